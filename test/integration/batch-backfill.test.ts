// Batch-mode backfills through the real openai client against the mock's Files and Batches APIs:
// the table is cut into parts under the enqueued-token limit, failed lines become dead letters, a
// worker stopped while the workflow waits or while it writes costs nothing more, a lost reply to
// the batch's creation finds that batch instead of paying for another, and pause and cancel hold.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { startBatchBackfill, type BatchBackfillOptions } from '../../src/backfill/start.js';
import { partCounts } from '../../src/db/batch-parts.js';
import { requeueFailedBatchesNow } from '../../src/db/dead-letters.js';
import { getPipeline } from '../../src/db/catalog.js';
import { startReembed } from '../../src/reembed/start.js';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';
import { OpenAIProvider } from '../../src/providers/openai.js';
import { pauseSignal, progressQuery, resumeSignal } from '../../workflows/definitions.js';
import type { batchBackfill } from '../../workflows/index.js';
import { applyPipeline, startHarness, uniqueName, type Harness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';
import { workflowBundle } from '../../src/worker/bundle.js';

const { History } = proto.temporal.api.history.v1;
const FIXTURES = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

/**
 * Replays a finished workflow's history against today's code; with EMBEDSYNC_RECORD_HISTORIES=1
 * also records it as a fixture that test/integration/replay.test.ts replays from then on.
 */
async function replays(handle: WorkflowHandle, fixture: string): Promise<string[]> {
  const history = await handle.fetchHistory();
  const bundle = await workflowBundle(path.join(os.tmpdir(), 'embedsync-test-cache'));
  const failures: string[] = [];
  const histories = [{ workflowId: handle.workflowId, history }];
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories))
    if (result.error) failures.push(String(result.error));
  if (process.env.EMBEDSYNC_RECORD_HISTORIES === '1')
    writeFileSync(path.join(FIXTURES, fixture), History.encode(history).finish());
  return failures;
}

let h: Harness;
let mock: MockProvider;
/** The mock's batch clock: batches complete only once a test moves it past their delay. */
let now = 0;
const COMPLETION_MS = 60_000;
const POISON = 'REFUSE-THIS-ROW';

/** The pipeline over a test table, at `dimensions`. */
const pipelineOf = (name: string, dimensions = 64) => ({
  name,
  source: { table: name },
  embed: { columns: ['name', 'body'] },
  embedding: {
    provider: 'openai' as const,
    model: 'text-embedding-3-small',
    dimensions,
    baseURL: mock.openaiBaseURL,
  },
});

/** A fresh table of `rows` rows, one of them (id `poisoned`) refused by the provider. */
async function freshTable(base: string, rows: number, poisoned?: number): Promise<string> {
  const name = uniqueName(base);
  await h.db.pool.query(`create table ${name} (id bigint primary key, name text, body text)`);
  await h.db.pool.query(
    `insert into ${name} select g, 'Item ' || g,
            'Row ' || g || ' of ${name}, embedded through the batch API, ' || md5(g::text)
       from generate_series(1, $1::int) g`,
    [rows],
  );
  if (poisoned !== undefined)
    await h.db.pool.query(`update ${name} set body = body || ' ${POISON}' where id = $1`, [
      poisoned,
    ]);
  await applyPipeline(h, pipelineOf(name));
  return name;
}

async function begin(
  name: string,
  options: Partial<BatchBackfillOptions> = {},
): Promise<WorkflowHandle<typeof batchBackfill>> {
  return startBatchBackfill(h.client, await getPipeline(h.db.pool, name), {
    taskQueue: h.taskQueue,
    instanceId: h.instanceId,
    rows: 0,
    pollSeconds: 1,
    enqueuedTokens: 10_000_000,
    ...options,
  });
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(sql, params);
  return rows[0]?.n ?? 0;
}

/** Rows with vectors, each text billed by a completed batch, and texts billed more than once. */
async function outcome(name: string) {
  const mine = mock.batches.paidInputs.filter((t) => t.includes(` of ${name}, `));
  const twice = mine.filter((t, i) => mine.indexOf(t) !== i);
  return {
    embedded: await count(`select count(distinct pk)::int as n from ${name}_embeddings`),
    paid: mine.length,
    twice,
  };
}

/** What the token ledger holds for the pipeline's batch mode. */
async function ledger(name: string): Promise<{ tokens: number; texts: number }> {
  const { rows } = await h.db.pool.query<{ tokens: number; texts: number }>(
    `select coalesce(sum(tokens), 0)::int as tokens, coalesce(sum(texts), 0)::int as texts
       from embedsync.token_ledger where pipeline = $1 and mode = 'batch'`,
    [name],
  );
  return rows[0] ?? { tokens: 0, texts: 0 };
}

const batchesOf = (name: string) =>
  mock.batches.created.filter((b) => b.metadata?.pipeline === name);

describe('batch-mode backfills', () => {
  before(async () => {
    mock = await startMockProvider({
      poisonMarker: POISON,
      batch: { completionMs: COMPLETION_MS, clock: () => now },
    });
    h = await startHarness('batch_backfill', {
      pollers: 0,
      providers: [new OpenAIProvider({ baseURL: mock.openaiBaseURL })],
    });
  });
  after(async () => {
    await h?.stop();
    await mock?.close();
  });
  beforeEach(() => {
    now = 0;
    mock.options.batch = { completionMs: COMPLETION_MS, clock: () => now };
  });

  it('a backfill of 3,000 rows completes at the batch price, one refused line dead-lettered', async () => {
    const name = await freshTable('batch_done', 3000, 42);
    mock.options.batch = { completionMs: 0, clock: () => now };
    const handle = await begin(name);
    const result = await handle.result();
    assert.equal(result.processed, 3000);
    assert.equal(result.deadLettered, 1);
    const o = await outcome(name);
    assert.equal(o.embedded, 2999);
    assert.equal(o.paid, 2999, 'each row paid once, the refused one not at all');
    assert.deepEqual(o.twice, []);
    assert.ok(result.tokens > 0);
    assert.deepEqual(await ledger(name), { tokens: result.tokens, texts: 2999 });
    const online = mock.requests.filter((r) => r.batch === undefined && r.model !== '');
    assert.equal(online.length, 0, 'nothing was embedded online');
    const letters = await h.db.pool.query<{ pk: string; error: string }>(
      'select pk, error from embedsync.dead_letters where pipeline = $1',
      [name],
    );
    assert.deepEqual(
      letters.rows.map((r) => r.pk),
      ['42'],
    );
    assert.match(letters.rows[0]?.error ?? '', /input/);
    const parts = await h.db.pool.query<{ status: string; written: number }>(
      'select status, written from embedsync.batch_parts where pipeline = $1',
      [name],
    );
    assert.deepEqual(
      parts.rows.map((r) => r.status),
      ['written'],
    );
    const state = await h.db.pool.query<{ state: string }>(
      'select state from embedsync.pipelines where name = $1',
      [name],
    );
    assert.equal(state.rows[0]?.state, 'active');
    assert.deepEqual(await replays(handle, 'batch-backfill.history.bin'), []);
  });

  it('the enqueued-token limit cuts the table into parts submitted in turn', async () => {
    const name = await freshTable('batch_parts', 2000);
    // About 30 tokens a row: four or more parts under 16,000 tokens.
    mock.options.batch = { completionMs: 0, clock: () => now, enqueuedTokenLimit: 16_000 };
    const result = await begin(name, { enqueuedTokens: 16_000 }).then((x) => x.result());
    assert.equal(result.processed, 2000);
    const batches = batchesOf(name);
    assert.ok(batches.length >= 4, `${batches.length} parts`);
    assert.ok(
      batches.every((b) => b.status === 'completed'),
      'no part was refused for the limit',
    );
    // In turn: each part was created once the one before had completed (seconds, as OpenAI says).
    for (let i = 1; i < batches.length; i += 1) {
      const [before, next] = [batches[i - 1], batches[i]];
      assert.ok((next?.created_at ?? 0) >= (before?.completed_at ?? Infinity), `part ${i}`);
    }
    const o = await outcome(name);
    assert.equal(o.embedded, 2000);
    assert.deepEqual(o.twice, []);
  });

  it('a part refused for the enqueued-token limit is submitted again once there is room', async () => {
    const name = await freshTable('batch_refused', 1200);
    // The workflow believes in twice the room the account has: its second part is refused.
    mock.options.batch = { completionMs: 0, clock: () => now, enqueuedTokenLimit: 16_000 };
    const handle = await begin(name, { enqueuedTokens: 32_000, partTokens: 16_000 });
    const result = await handle.result();
    assert.equal(result.processed, 1200);
    const batches = batchesOf(name);
    const refused = batches.filter((b) => b.errors?.data[0]?.code === 'token_limit_exceeded');
    assert.ok(refused.length >= 1, 'a part was refused for the limit');
    const o = await outcome(name);
    assert.equal(o.embedded, 1200);
    assert.equal(o.paid, 1200);
    assert.deepEqual(o.twice, []);
  });

  it('a lost reply to the batch creation finds that batch instead of paying for a second one', async () => {
    const name = await freshTable('batch_lost', 500);
    mock.options.batch = { completionMs: 0, clock: () => now, loseCreateReplies: 1 };
    const result = await begin(name).then((x) => x.result());
    assert.equal(result.processed, 500);
    assert.equal(batchesOf(name).length, 1, 'one batch created');
    const o = await outcome(name);
    assert.equal(o.paid, 500);
    assert.deepEqual(o.twice, []);
  });

  it('a worker stopped while the workflow waits, and one stopped while it writes, pay nothing more', async () => {
    const name = await freshTable('batch_killed', 1500);
    const handle = await begin(name);
    await waitFor('the part submitted', () => Promise.resolve(batchesOf(name).length === 1));
    // Waiting on a timer: the worker goes, and a new one takes over.
    await h.stopWorker();
    await h.startWorker();
    await waitFor('the new worker polling', async () => {
      const p = await handle.query(progressQuery);
      return p.parts?.inProgress === 1;
    });
    // Writing: the write of row 1,200 (its second group) waits on the row's key lock while the
    // worker is stopped; its connection is ended so the attempt dies there.
    const holder = await h.db.pool.connect();
    try {
      await holder.query('begin');
      await holder.query(
        `select pg_advisory_xact_lock(hashtext('embedsync:' || $1), hashtext('1200'))`,
        [name],
      );
      now += COMPLETION_MS;
      await waitFor('the write blocked on the lock', async () => {
        const n = await count(
          `select count(*)::int as n from pg_locks
            where locktype = 'advisory' and not granted
              and database = (select oid from pg_database where datname = current_database())`,
        );
        return n > 0;
      });
      const written = await count(`select count(distinct pk)::int as n from ${name}_embeddings`);
      assert.ok(written >= 500 && written < 1500, `${written} rows written before the stop`);
      const stopping = h.stopWorker();
      await h.db.pool.query(
        `select pg_terminate_backend(pid) from pg_locks
          where locktype = 'advisory' and not granted and pid <> pg_backend_pid()
            and database = (select oid from pg_database where datname = current_database())`,
      );
      await stopping;
      await holder.query('commit');
    } finally {
      await holder.query('rollback').catch(() => undefined);
      holder.release();
    }
    await h.startWorker();
    const result = await handle.result();
    assert.equal(result.processed, 1500);
    assert.equal(batchesOf(name).length, 1, 'one batch for the part, whatever was stopped');
    const o = await outcome(name);
    assert.equal(o.embedded, 1500);
    assert.equal(o.paid, 1500);
    assert.deepEqual(o.twice, []);
    assert.equal((await ledger(name)).texts, 1500, 'the ledger counts the part once');
  });

  it('a row changed while its part is at the provider syncs online, and the part leaves it be', async () => {
    const name = await freshTable('batch_changed', 300);
    const poller = h.startPoller();
    try {
      const handle = await begin(name);
      await waitFor('the part submitted', () => Promise.resolve(batchesOf(name).length === 1));
      await h.db.pool.query(`update ${name} set body = 'changed while batched' where id = 7`);
      const changed = `select count(*)::int as n from ${name}_embeddings
                        where pk = '7' and chunk like '%changed while batched%'`;
      await waitFor('the change synced online', async () => (await count(changed)) === 1);
      now += COMPLETION_MS;
      assert.equal((await handle.result()).processed, 300);
      assert.equal(await count(changed), 1, "the batch's older vector did not replace it");
      const parts = await h.db.pool.query<{ stale: number; written: number }>(
        'select stale, written from embedsync.batch_parts where pipeline = $1',
        [name],
      );
      assert.deepEqual(parts.rows, [{ stale: 1, written: 299 }]);
      assert.equal(await count(`select count(distinct pk)::int as n from ${name}_embeddings`), 300);
    } finally {
      await poller.stop();
    }
  });

  it('a batch that expires has what ran written, and the rest go round again through change sync', async () => {
    const name = await freshTable('batch_expired', 300);
    mock.options.batch = { completionMs: 0, clock: () => now, expireAfterLines: 100 };
    const result = await (await begin(name)).result();
    assert.equal(result.processed, 300);
    assert.equal(batchesOf(name)[0]?.status, 'expired');
    const embedded = `select count(distinct pk)::int as n from ${name}_embeddings`;
    assert.equal(await count(embedded), 100);
    const letters = `select count(*)::int as n from embedsync.dead_letters
                      where pipeline = $1 and content_hash = '' and error like '%expired%'`;
    assert.equal(await count(letters, [name]), 200, 'the rows that did not run wait to go again');
    // Their wait is over at once here; the poller sends them through change sync, online.
    await requeueFailedBatchesNow(h.db.pool, name);
    const poller = h.startPoller();
    try {
      await waitFor('every row embedded', async () => (await count(embedded)) === 300, 60_000);
    } finally {
      await poller.stop();
    }
    const o = await outcome(name);
    assert.deepEqual(o.twice, [], 'the batch paid for 100 rows, change sync for the other 200');
    const online = mock.requests.filter(
      (r) => r.batch === undefined && r.inputs.some((t) => t.includes(` of ${name}, `)),
    );
    assert.equal(
      online.reduce((n, r) => n + r.inputs.length, 0),
      200,
    );
  });

  it('pause stops new parts; cancel cancels the provider batch in flight', async () => {
    const name = await freshTable('batch_paused', 1000);
    const handle = await begin(name, { enqueuedTokens: 12_000 });
    await waitFor('a part submitted', () => Promise.resolve(batchesOf(name).length === 1));
    await handle.signal(pauseSignal);
    await waitFor('pausing', async () => (await handle.query(progressQuery)).phase === 'pausing');
    now += COMPLETION_MS;
    await waitFor('paused', async () => (await handle.query(progressQuery)).phase === 'paused');
    const paused = await handle.query(progressQuery);
    assert.equal(paused.parts?.completed, 1);
    assert.equal(batchesOf(name).length, 1, 'no part submitted while paused');
    await handle.signal(resumeSignal);
    await waitFor('the next part submitted', () => Promise.resolve(batchesOf(name).length === 2));
    await handle.cancel();
    await assert.rejects(handle.result());
    const last = batchesOf(name)[1];
    assert.ok(
      last?.status === 'cancelling' || last?.status === 'cancelled',
      `the provider batch is ${last?.status}`,
    );
    const parts = await h.db.pool.query<{ status: string }>(
      'select status from embedsync.batch_parts where pipeline = $1 order by part',
      [name],
    );
    assert.deepEqual(
      parts.rows.map((r) => r.status),
      ['written', 'cancelled'],
    );
    const counted = (await partCounts(h.db.pool)).get(name);
    assert.equal(counted?.submitted, 2);
    assert.equal(counted?.completed, 1);
    assert.equal(counted?.cancelled, 1);
    assert.equal(counted?.inProgress, 0);
    const state = await h.db.pool.query<{ state: string }>(
      'select state from embedsync.pipelines where name = $1',
      [name],
    );
    assert.equal(state.rows[0]?.state, 'active');
  });

  it('texts a batch has paid for are on record: a second table of the same texts pays nothing', async () => {
    const first = await freshTable('batch_first', 300);
    mock.options.batch = { completionMs: 0, clock: () => now };
    await (await begin(first)).result();
    // The same rows under another pipeline with the same model settings.
    const second = uniqueName('batch_second');
    await h.db.pool.query(`create table ${second} as select * from ${first}`);
    await h.db.pool.query(`alter table ${second} add primary key (id)`);
    await applyPipeline(h, pipelineOf(second));
    const result = await (await begin(second)).result();
    assert.equal(result.processed, 300);
    assert.equal(batchesOf(second).length, 0, 'no batch was needed');
    assert.equal(await count(`select count(distinct pk)::int as n from ${second}_embeddings`), 300);
    const reused = await h.db.pool.query<{ reused: number; texts: number }>(
      `select coalesce(sum(reused), 0)::int as reused, coalesce(sum(texts), 0)::int as texts
         from embedsync.token_ledger where pipeline = $1`,
      [second],
    );
    assert.deepEqual(reused.rows[0], { reused: 300, texts: 0 });
    const o = await outcome(first);
    assert.equal(o.paid, 300, 'each text paid once, by the first table');
  });

  it("rows of one part that share their text pay for it once, written from the part's own output", async () => {
    const name = uniqueName('batch_twins');
    await h.db.pool.query(`create table ${name} (id bigint primary key, name text, body text)`);
    // 200 rows, 20 distinct texts: each text ten times over.
    await h.db.pool.query(
      `insert into ${name} select g, 'Item ' || (g % 20),
              'Shared text ' || (g % 20) || ' of ${name}, ten rows each'
         from generate_series(1, 200) g`,
    );
    await applyPipeline(h, pipelineOf(name));
    mock.options.batch = { completionMs: 0, clock: () => now };
    const result = await (await begin(name)).result();
    assert.equal(result.processed, 200);
    const o = await outcome(name);
    assert.equal(o.paid, 20, 'each distinct text paid once');
    assert.deepEqual(o.twice, []);
    assert.equal(o.embedded, 200, 'every row has its vector');
    const { rows } = await h.db.pool.query<{ reused: number; texts: number }>(
      `select coalesce(sum(reused), 0)::int as reused, coalesce(sum(texts), 0)::int as texts
         from embedsync.token_ledger where pipeline = $1`,
      [name],
    );
    assert.deepEqual(rows[0], { reused: 180, texts: 20 });
    const same = await count(
      `select count(*)::int as n from ${name}_embeddings a join ${name}_embeddings b
          on a.chunk = b.chunk and a.embedding <> b.embedding`,
    );
    assert.equal(same, 0, 'rows of the same text have the same vector');
  });

  it('a re-embed in batch mode builds the new generation through the Batch API and swaps it in', async () => {
    const name = await freshTable('batch_reembed', 800);
    mock.options.batch = { completionMs: 0, clock: () => now };
    await (await begin(name)).result();
    await applyPipeline(h, pipelineOf(name, 32));
    const p = await getPipeline(h.db.pool, name);
    assert.equal(p.state, 'reembed_pending');
    const handle = await startReembed(h.client, p, {
      taskQueue: h.taskQueue,
      instanceId: h.instanceId,
      rows: 0,
      batch: { pollSeconds: 1, enqueuedTokens: 10_000_000 },
    });
    const result = await handle.result();
    assert.equal(result.processed, 800);
    const dims = await h.db.pool.query<{ d: number; n: number }>(
      `select vector_dims(embedding) as d, count(distinct pk)::int as n from ${name}_embeddings group by 1`,
    );
    assert.deepEqual(dims.rows, [{ d: 32, n: 800 }]);
    assert.equal(batchesOf(name).length, 2, 'one batch for the backfill, one for the re-embed');
    const o = await outcome(name);
    assert.equal(o.paid, 1600, 'each row paid once per generation');
    const after = await getPipeline(h.db.pool, name);
    assert.equal(after.state, 'active');
    assert.equal(after.generation, p.pendingGeneration);
    assert.deepEqual(await replays(handle, 'batch-reembed.history.bin'), []);
  });
});
