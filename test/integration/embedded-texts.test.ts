// A text is embedded once (docs/architecture.md, decision 16): two syncs in flight on one row, a
// backfill racing a sync, two rows sharing a text, a poller re-claim after a crash, and the lease of
// a worker that died with a text in flight; each text reaches the provider once.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import { startBackfill } from '../../src/backfill/start.js';
import { vectorSettings } from '../../src/config/pipeline.js';
import { getPipeline } from '../../src/db/catalog.js';
import { lockPipeline } from '../../src/db/key-locks.js';
import { createPool } from '../../src/db/pool.js';
import { Poller } from '../../src/poller/poller.js';
import { textKey } from '../../src/texts/once.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(sql, params);
  return rows[0]?.n ?? -1;
}

async function converged(pipeline = 'products'): Promise<void> {
  await waitFor(
    `${pipeline} to converge`,
    async () => {
      if ((await count('select count(*)::int as n from embedsync.outbox')) > 0) return false;
      const r = await verifyPipeline(h.db.pool, pipeline);
      return r.missing.length + r.stale.length + r.orphaned.length === 0;
    },
    60_000,
    100,
  );
}

/** How many times the provider was sent each text that starts with `prefix`. */
function sent(prefix: string): Map<string, number> {
  const times = new Map<string, number>();
  for (const text of h.provider.seen)
    if (text.startsWith(prefix)) times.set(text, (times.get(text) ?? 0) + 1);
  return times;
}

function assertPaidOnce(prefix: string, distinct: number): void {
  const times = sent(prefix);
  const twice = [...times].filter(([, n]) => n > 1).map(([t, n]) => `${t} (${n}x)`);
  assert.deepEqual(twice, [], 'texts sent to the provider more than once');
  assert.equal(times.size, distinct, `texts starting ${prefix} sent`);
}

/** Workflows for `keys` are started while no worker runs, so they are all in flight at once. */
async function withoutWorker(run: () => Promise<void>): Promise<void> {
  await h.stopWorker();
  try {
    await run();
  } finally {
    await h.startWorker();
  }
}

/** The poller has claimed every change: their workflows have started (it commits after). */
async function claimed(): Promise<void> {
  await waitFor(
    'the changes claimed',
    async () => (await count('select count(*)::int as n from embedsync.outbox')) === 0,
  );
}

async function reused(pipeline: string): Promise<number> {
  return count(
    'select coalesce(sum(reused), 0)::int as n from embedsync.token_ledger where pipeline = $1',
    [pipeline],
  );
}

describe('a text is embedded once', () => {
  before(async () => {
    h = await startHarness('texts');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, productsPipeline());
  });
  after(async () => h.stop());
  beforeEach(() => h.provider.reset());

  it('two syncs in flight on the same row pay for its text once', async () => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into products (name, description, category) values ('Busy', 'first', 'a') returning id::text`,
    );
    await converged();
    h.provider.reset();
    const pk = rows[0]?.id ?? '';
    // Every write waits behind this lock, so both syncs are past their embed before either writes.
    const blocker = await h.db.pool.connect();
    try {
      await blocker.query('begin');
      await lockPipeline(blocker, 'products', 'exclusive');
      await withoutWorker(async () => {
        // New content, then a change of metadata only: two workflows for one row, one text.
        await h.db.pool.query(`update products set description = 'Busy row, twice' where id = $1`, [
          pk,
        ]);
        await claimed();
        await h.db.pool.query(`update products set category = 'b' where id = $1`, [pk]);
        await claimed();
      });
      await waitFor(
        'both syncs to have the vector staged',
        async () =>
          (await count(
            `select count(*)::int as n from embedsync.staged_chunks
              where pk = $1 and embedding is not null`,
            [pk],
          )) === 2,
      );
    } finally {
      await blocker.query('commit');
      blocker.release();
    }
    await converged();
    assertPaidOnce('Product: Busy', 1);
    assert.equal(sent('Product: Busy').get('Product: Busy\nBusy row, twice'), 1);
  });

  it('two rows with the same text pay for it once, in one statement or in two', async () => {
    await withoutWorker(async () => {
      await h.db.pool.query(
        `insert into products (name, description, category)
         select 'Boilerplate', 'Shipped in 2 days. Returns within 30 days.', 'c' || g
           from generate_series(1, 3) g`,
      );
      await h.db.pool.query(
        `insert into products (name, description) values ('Boilerplate', 'Shipped in 2 days. Returns within 30 days.')`,
      );
    });
    await converged();
    assertPaidOnce('Product: Boilerplate', 1);
    assert.equal(
      await count(`select count(distinct pk)::int as n from products_embeddings
                    where chunk = 'Product: Boilerplate' || chr(10) || 'Shipped in 2 days. Returns within 30 days.'`),
      4,
      'each row has its vectors',
    );
    assert.ok((await reused('products')) >= 3, 'the ledger counts the texts reused');
  });

  it('a poller killed between starting a workflow and committing its claim: the next claim, with a newer change, resumes that workflow and pays for each text once', async () => {
    await converged();
    const doomedApp = `doomed-poller-${process.pid}`;
    const doomedPool = createPool(h.db.url, { max: 2, applicationName: doomedApp });
    const started: string[] = [];
    // Temporal has accepted the start; the claim's connection dies before its commit.
    const crashAfterStart: WorkflowClientInterceptor = {
      async startWithDetails(input, next) {
        const output = await next(input);
        started.push(input.options.workflowId);
        await h.db.pool.query(
          `select pg_terminate_backend(pid) from pg_stat_activity
            where application_name = $1 and datname = current_database()`,
          [doomedApp],
        );
        return output;
      },
    };
    const doomed = new Poller({
      pool: doomedPool,
      databaseUrl: h.db.url,
      temporal: new Client({
        connection: h.client.connection,
        namespace: h.client.options.namespace,
        interceptors: { workflow: [crashAfterStart] },
      }),
      taskQueue: h.taskQueue,
      log: h.log,
    });
    const restarted: string[] = [];
    const recordStart: WorkflowClientInterceptor = {
      async startWithDetails(input, next) {
        restarted.push(input.options.workflowId);
        return next(input);
      },
    };
    // It claims what the doomed poller stamped at once, as any poller does after the grace.
    const healthy = new Poller(
      {
        pool: h.db.pool,
        databaseUrl: h.db.url,
        temporal: new Client({
          connection: h.client.connection,
          namespace: h.client.options.namespace,
          interceptors: { workflow: [recordStart] },
        }),
        taskQueue: h.taskQueue,
        log: h.log,
      },
      { stampGraceMs: 0 },
    );
    // The harness's own poller would claim these rows first: it waits until the end.
    const running = h.pollers.splice(0);
    await Promise.all(running.map((p) => p.stop()));
    try {
      await withoutWorker(async () => {
        await h.db.pool.query(
          `insert into products (name, description) select 'Reclaimed ' || g, 'claimed twice ' || g from generate_series(201, 205) g`,
        );
        await assert.rejects(doomed.pollOnce());
        assert.equal(started.length, 1, 'the doomed poller started its workflow');
        // A newer change: the next claim takes six keys, under another workflow id.
        await h.db.pool.query(
          `insert into products (name, description) values ('Reclaimed 206', 'claimed twice 206')`,
        );
        assert.equal(await healthy.pollOnce(), 6);
        // The doomed claim's batch again, and a batch of the newer change alone.
        assert.equal(restarted.length, 2);
        assert.ok(restarted.includes(started[0] ?? ''), 'the same workflow was resumed');
      });
      await converged();
      assertPaidOnce('Product: Reclaimed', 6);
    } finally {
      await doomedPool.end();
      h.startPoller();
    }
  });

  it('a backfill racing a sync on the same rows pays for each text once', async () => {
    const name = uniqueName('race');
    await h.db.pool.query(
      `create table ${name} (id bigint primary key, name text, description text, category text)`,
    );
    await h.db.pool.query(
      `insert into ${name} select g, 'Raced ' || g, 'walked and synced ' || g, 'x' from generate_series(1, 300) g`,
    );
    await applyPipeline(
      h,
      productsPipeline({ name, source: { table: name }, metadata: ['category'], batchSize: 50 }),
    );
    let backfill: Awaited<ReturnType<typeof startBackfill>> | undefined;
    // Every write waits behind this lock: the walk's batches embed, then the syncs read the very
    // rows the walk has embedded and not yet written.
    const blocker = await h.db.pool.connect();
    try {
      await blocker.query('begin');
      await lockPipeline(blocker, name, 'exclusive');
      const p = await getPipeline(h.db.pool, name);
      backfill = await startBackfill(h.client, p, {
        taskQueue: h.taskQueue,
        instanceId: h.instanceId,
        rows: 300,
        batchSize: 50,
      });
      await waitFor(
        "the walk's batches to have their vectors",
        async () =>
          (await count(
            `select coalesce(sum(texts + reused), 0)::int as n from embedsync.token_ledger
              where pipeline = $1 and mode = 'backfill'`,
            [name],
          )) >= 300,
        60_000,
      );
      // Metadata only: each sync reads the content the walk read.
      await h.db.pool.query(`update ${name} set category = 'y'`);
      await claimed();
      await waitFor(
        'every sync to have its vectors staged',
        async () =>
          (await count(
            'select count(*)::int as n from embedsync.staged_chunks where embedding is not null',
          )) >= 300,
        60_000,
      );
    } finally {
      await blocker.query('commit');
      blocker.release();
    }
    await backfill?.result();
    await converged(name);
    assertPaidOnce('Product: Raced ', 300);
  });

  it("a worker's lease is taken over once it expires, and the text is paid for once", async () => {
    const p = await getPipeline(h.db.pool, 'products');
    const text = 'Product: Orphaned\nheld by a worker that died';
    const key = textKey(vectorSettings(p.config.embedding), text);
    // What a worker killed mid-request leaves: a lease, no vector.
    await h.db.pool.query(
      `insert into embedsync.embedded_texts (key, holder, lease_until)
       values (decode($1, 'hex'), 'a killed worker', now() + interval '2 seconds')`,
      [key],
    );
    const { rows: lease } = await h.db.pool.query<{ until: Date }>(
      `select lease_until as until from embedsync.embedded_texts where key = decode($1, 'hex')`,
      [key],
    );
    await h.db.pool.query(
      `insert into products (name, description) values ('Orphaned', 'held by a worker that died')`,
    );
    await converged();
    assert.equal(sent('Product: Orphaned').get(text), 1);
    const { rows } = await h.db.pool.query<{
      holder: string | null;
      known: boolean;
      after: boolean;
    }>(
      `select holder, embedding is not null as known, stored_at >= $2 as after
         from embedsync.embedded_texts where key = decode($1, 'hex')`,
      [key, lease[0]?.until],
    );
    assert.deepEqual(rows, [{ holder: null, known: true, after: true }]);
  });

  it('the poller prunes texts past the retention, and a pruned text is paid for again', async () => {
    await h.db.pool.query(
      `insert into products (name, description) values ('Pruned', 'kept for a while')`,
    );
    await converged();
    const p = await getPipeline(h.db.pool, 'products');
    const key = textKey(vectorSettings(p.config.embedding), 'Product: Pruned\nkept for a while');
    const onRecord = () =>
      count(
        `select count(*)::int as n from embedsync.embedded_texts where key = decode($1, 'hex')`,
        [key],
      );
    assert.equal(await onRecord(), 1);
    // Stored an hour ago, as the database's clock says.
    await h.db.pool.query(
      `update embedsync.embedded_texts set stored_at = now() - interval '1 hour' where key = decode($1, 'hex')`,
      [key],
    );
    const pruner = new Poller(
      {
        pool: h.db.pool,
        databaseUrl: h.db.url,
        temporal: h.client,
        taskQueue: h.taskQueue,
        log: h.log,
      },
      { textRetentionMs: 30 * 60_000 },
    );
    assert.ok((await pruner.pruneTexts()) >= 1);
    assert.equal(await onRecord(), 0);
    h.provider.reset();
    await h.db.pool.query(
      `insert into products (name, description) values ('Pruned', 'kept for a while')`,
    );
    await converged();
    assert.equal(sent('Product: Pruned').size, 1);
    assert.equal(await onRecord(), 1);
  });
});
