// A sync's stages run as local activities, in the workflow's own task, and still show in the Web UI
// as markers with their summaries; a retried stage reuses what was staged (and one still failing
// after a few local attempts goes on as an activity on the task queue), and a provider paced by
// its task queue's rate is still called through that queue. A poller beside the worker has the
// server hand each sync's first workflow task straight to it (eager workflow start).
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Poller } from '../../src/poller/poller.js';
import { embedTaskQueue } from '../../src/temporal/names.js';
import { LOCAL_ATTEMPTS } from '../../workflows/batch.js';
import type { SyncInput } from '../../workflows/index.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

type Events = NonNullable<Awaited<ReturnType<typeof syncHistory>>['events']>;

interface Stage {
  type: string;
  attempt: number;
  summary: string;
}

/** The history of the completed sync that carried the key `pk` of `pipeline`. */
async function syncHistory(pipeline: string, pk: string) {
  const query = `TaskQueue = "${h.taskQueue}" AND EmbedPipeline = "${pipeline}" AND ExecutionStatus = "Completed"`;
  return waitFor(`the sync of ${pipeline} key ${pk} to complete`, async () => {
    for await (const w of h.client.workflow.list({ query })) {
      const history = await h.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
      const input = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input;
      const payload = input?.payloads?.[0];
      const keys = payload ? defaultPayloadConverter.fromPayload<SyncInput>(payload).keys : [];
      if (keys.includes(pk)) return history;
    }
    return undefined;
  });
}

/** The local activities a history recorded, in order, as the Web UI lists them. */
function localStages(events: Events): Stage[] {
  return events.flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    const data =
      marker?.markerName === 'core_local_activity' && marker.details?.data?.payloads?.[0];
    if (!data) return [];
    const facts = defaultPayloadConverter.fromPayload<{ activity_type: string; attempt: number }>(
      data,
    );
    const summary = e.userMetadata?.summary;
    return [
      {
        type: facts.activity_type,
        attempt: facts.attempt,
        summary: summary ? defaultPayloadConverter.fromPayload<string>(summary) : '',
      },
    ];
  });
}

/** Activities scheduled on a task queue: their types and queues. */
const queuedActivities = (events: Events): string[] =>
  events.flatMap((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    return a ? [`${a.activityType?.name ?? ''} on ${a.taskQueue?.name ?? ''}`] : [];
  });

async function insertRow(table: string, name: string): Promise<string> {
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into ${table} (name, description) values ($1, 'A description of ' || $1) returning id::text`,
    [name],
  );
  return rows[0]?.id ?? '';
}

async function vectorRow(table: string, pk: string): Promise<void> {
  await waitFor(`the vector row of ${pk}`, async () => {
    const { rowCount } = await h.db.pool.query(`select 1 from ${table} where pk = $1`, [pk]);
    return (rowCount ?? 0) > 0;
  });
}

/** Runs `body` while the vector table refuses its first `n` writes (a sequence is not rolled back). */
async function refuseWrites(n: number, body: () => Promise<void>): Promise<void> {
  await h.db.pool.query(`
    create sequence write_attempts;
    create function refuse_writes() returns trigger language plpgsql as $$
    begin
      if nextval('write_attempts') <= ${n} then raise exception 'the write is refused'; end if;
      return null;
    end $$;
    create trigger refuse_writes before insert on public.products_embeddings
      for each statement execute function refuse_writes()`);
  try {
    await body();
  } finally {
    await h.db.pool.query(
      'drop trigger refuse_writes on public.products_embeddings; drop function refuse_writes(); drop sequence write_attempts',
    );
  }
}

describe('the stages of a sync as local activities', () => {
  before(async () => {
    h = await startHarness('local');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, productsPipeline());
  });
  after(async () => h.stop());
  beforeEach(() => h.provider.reset());

  it('a sync runs fetch, chunk, embed and write in its own workflow task, each shown with its summary', async () => {
    const pk = await insertRow('products', 'Alpine Tent');
    await vectorRow('public.products_embeddings', pk);
    const events = (await syncHistory('products', pk)).events ?? [];
    assert.deepEqual(queuedActivities(events), [], 'no activity went through a task queue');
    assert.deepEqual(localStages(events), [
      { type: 'fetchBatch', attempt: 1, summary: 'Read 1 row of products (generation 1)' },
      { type: 'chunkBatch', attempt: 1, summary: 'Chunk 1 row of products (generation 1)' },
      {
        type: 'embedBatch',
        attempt: 1,
        summary: 'Embed the chunks of 1 row of products (generation 1)',
      },
      {
        type: 'writeBatch',
        attempt: 1,
        summary: 'Write 1 changed row in the vector table of products (generation 1)',
      },
    ]);
    assert.equal(h.provider.texts, 1);
  });

  it('a write that fails once is retried in place and the provider is not paid again', async () => {
    await refuseWrites(1, async () => {
      const pk = await insertRow('products', 'Kettle');
      await vectorRow('public.products_embeddings', pk);
      const events = (await syncHistory('products', pk)).events ?? [];
      const write = localStages(events).find((s) => s.type === 'writeBatch');
      assert.equal(write?.attempt, 2, 'the write was retried as a local activity');
      assert.deepEqual(queuedActivities(events), []);
      assert.equal(h.provider.texts, 1, 'the text was embedded once');
    });
  });

  it('a write still failing after its local attempts goes on as an activity on the task queue, and the provider is not paid again', async () => {
    await refuseWrites(LOCAL_ATTEMPTS, async () => {
      const pk = await insertRow('products', 'Teapot');
      await vectorRow('public.products_embeddings', pk);
      const events = (await syncHistory('products', pk)).events ?? [];
      const write = localStages(events).find((s) => s.type === 'writeBatch');
      assert.equal(write?.attempt, LOCAL_ATTEMPTS, 'the local attempts were used up');
      assert.deepEqual(queuedActivities(events), [`writeBatch on ${h.taskQueue}`]);
      assert.equal(h.provider.texts, 1, 'the text was embedded once');
    });
  });

  it('where the queue paces the provider, the sync embeds through the provider queue and the rest stays local', async () => {
    // A requests-per-minute limit is kept by the embedding queue's rate, which a local call would
    // bypass: the local embed declines and the paced loop runs on the queue.
    h.provider.rateLimit = { requestsPerMinute: 6000 };
    await h.stopWorker();
    await h.startWorker();
    try {
      const pk = await insertRow('products', 'Desk Lamp');
      await vectorRow('public.products_embeddings', pk);
      const events = (await syncHistory('products', pk)).events ?? [];
      assert.deepEqual(queuedActivities(events), [
        `embedBatch on ${embedTaskQueue(h.taskQueue, 'offline')}`,
      ]);
      assert.deepEqual(
        localStages(events).map((s) => s.type),
        ['fetchBatch', 'chunkBatch', 'embedBatch', 'writeBatch'],
      );
      assert.equal(h.provider.texts, 1, 'the text was embedded once');
    } finally {
      h.provider.rateLimit = undefined;
      await h.stopWorker();
      await h.startWorker();
    }
  });

  it('a poller beside the worker has each sync started eagerly on it, and the sync converges', async () => {
    const client = new Client({
      connection: h.workerConnection(),
      namespace: h.client.options.namespace,
    });
    const eager: boolean[] = [];
    const start = client.workflow.start.bind(client.workflow);
    client.workflow.start = async (...args: Parameters<typeof start>) => {
      const handle = await start(...args);
      eager.push(handle.eagerlyStarted);
      return handle;
    };
    await Promise.all(h.pollers.splice(0).map((p) => p.stop()));
    const poller = new Poller(
      {
        pool: h.db.pool,
        databaseUrl: h.db.url,
        temporal: client,
        taskQueue: h.taskQueue,
        log: h.log,
      },
      { eagerStart: true },
    );
    h.pollers.push(poller);
    poller.start();
    const pk = await insertRow('products', 'Wool Socks');
    await vectorRow('public.products_embeddings', pk);
    assert.deepEqual(eager, [true], 'the server handed the sync to this worker in its start call');
    assert.equal(h.provider.texts, 1);
  });
});
