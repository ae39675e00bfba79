// Several pollers, and a poller that dies half way through a claim: the outbox hands every change
// to exactly one workflow, and a claim that never committed is claimed again without running twice.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  Client,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowClientInterceptor,
} from '@temporalio/client';
import { pino } from 'pino';
import { createPool } from '../../src/db/pool.js';
import { Poller } from '../../src/poller/poller.js';
import { verifyPipeline } from '../../src/verify/verify.js';
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

interface StartAttempt {
  poller: string;
  workflowId: string;
  keys: string[];
  outcome: 'started' | 'already started' | 'failed';
}

/**
 * A client on the harness's connection that records every workflow start a poller attempts, and
 * runs `afterStart` once the server has accepted a start (to crash the poller at exactly that
 * point).
 */
function recordingClient(
  poller: string,
  attempts: StartAttempt[],
  afterStart?: () => Promise<void>,
): Client {
  const recorder: WorkflowClientInterceptor = {
    async startWithDetails(input, next) {
      const keys = (input.options.args[0] as SyncInput | undefined)?.keys ?? [];
      const attempt: StartAttempt = {
        poller,
        workflowId: input.options.workflowId,
        keys,
        outcome: 'failed',
      };
      attempts.push(attempt);
      try {
        const output = await next(input);
        attempt.outcome = 'started';
        await afterStart?.();
        return output;
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError)
          attempt.outcome = 'already started';
        throw err;
      }
    },
  };
  return new Client({
    connection: h.client.connection,
    namespace: h.client.options.namespace,
    interceptors: { workflow: [recorder] },
  });
}

/** A logger that keeps the pollers' warnings ("poll failed …") for the assertions. */
function warningLog(lines: string[]) {
  return pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(sql, params);
  return rows[0]?.n ?? -1;
}

/**
 * Waits for the outbox to drain and verify to come back clean. The timeout allows for one activity
 * task that an overloaded Temporal dev server records as started but never delivers: the sync
 * workflow retries it once its 2-minute start-to-close timeout expires. On failure it says which
 * workflows hold the missing keys and what they wait for.
 */
async function converged(attempts: readonly StartAttempt[] = []): Promise<void> {
  let seen = '';
  let missing: string[] = [];
  try {
    await waitFor(
      'the pipeline to converge',
      async () => {
        const outbox = await count('select count(*)::int as n from embedsync.outbox');
        const r = await verifyPipeline(h.db.pool, 'products');
        missing = [...r.missing, ...r.stale, ...r.orphaned];
        seen = `outbox ${outbox}, missing ${r.missing.length}, stale ${r.stale.length}, orphaned ${r.orphaned.length} of ${r.rows} rows`;
        return outbox === 0 && missing.length === 0;
      },
      180_000,
      250,
    );
  } catch (err) {
    const holders = attempts.filter((a) => a.keys.some((k) => missing.includes(k)));
    const waits = await Promise.all(
      holders.map(async (a) => {
        const d = await h.client.workflow.getHandle(a.workflowId).describe();
        const pending = (d.raw.pendingActivities ?? []).map(
          (p) => `${p.activityType?.name ?? '?'} attempt ${p.attempt ?? '?'}`,
        );
        return `${a.workflowId} ${d.status.name} [${pending.join(', ')}]`;
      }),
    );
    throw new Error(
      `${(err as Error).message}; last seen: ${seen}; keys [${missing.slice(0, 10).join(' ')}]; their workflows: ${waits.join('; ')}`,
      { cause: err },
    );
  }
}

/**
 * The runs matching `query`, once visibility lists at least `atLeast` and none of them is still
 * running.
 */
async function closedRuns(
  query: string,
  atLeast: number,
): Promise<{ workflowId: string; status: string }[]> {
  return waitFor(
    `${atLeast} closed workflows for ${query}`,
    async () => {
      const found: { workflowId: string; status: string }[] = [];
      for await (const info of h.client.workflow.list({ query }))
        found.push({ workflowId: info.workflowId, status: info.status.name });
      return found.length >= atLeast && found.every((w) => w.status !== 'RUNNING') ? found : false;
    },
    30_000,
    250,
  );
}

/**
 * Writes on its own connection until `stop` is set: inserts, updates and deletes of its own rows,
 * ~30 rows/s.
 */
async function writeSteadily(writer: number, stop: { set: boolean }): Promise<void> {
  const client = await h.db.pool.connect();
  try {
    const mine: string[] = [];
    for (let seq = 0; !stop.set; seq += 1) {
      const label = `w${writer}-${seq}`;
      const n = 1 + (seq % 6);
      const { rows } = await client.query<{ id: string }>(
        `insert into products (name, description, category, price)
         select 'Item ' || $1 || '.' || g, 'Inserted as ' || $1 || '.' || g, 'load', g from generate_series(1, $2::int) g returning id::text`,
        [label, n],
      );
      mine.push(...rows.map((r) => r.id));
      if (seq % 3 === 1) {
        const some = mine.filter((_, i) => i % 7 === seq % 7).slice(-5);
        await client.query(
          `update products set description = 'Updated as ' || $1 || '.' || id where id = any($2::bigint[])`,
          [label, some],
        );
      }
      if (seq % 5 === 4) {
        const gone = mine.splice(seq % mine.length, 2);
        await client.query('delete from products where id = any($1::bigint[])', [gone]);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.release();
  }
}

describe('pollers', () => {
  before(async () => {
    h = await startHarness('pollers', { pollers: 0 });
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, productsPipeline());
    // An independent record of every captured change, to hold the started workflows against.
    await h.db.pool.query(`
      create table public.captured (id bigint, pk text, op "char");
      create function public.record_captured() returns trigger language plpgsql as $$
      begin insert into public.captured select id, k.pk, op from new_rows, unnest(coalesce(pks, array[pk])) k(pk)
              where started_as is null; -- a claim's own stamped batches are not changes
        return null; end $$;
      create trigger record_captured after insert on embedsync.outbox
        referencing new table as new_rows for each statement execute function public.record_captured();`);
  });
  after(async () => h.stop());
  beforeEach(() => h.provider.reset());

  it('two pollers at once: nothing lost, nothing written twice', async (t) => {
    const attempts: StartAttempt[] = [];
    const warnings: string[] = [];
    // Small claims and a short interval, so that both pollers keep racing for the same outbox rows.
    const pollers = ['a', 'b'].map((name) => {
      const poller = new Poller(
        {
          pool: h.db.pool,
          databaseUrl: h.db.url,
          temporal: recordingClient(name, attempts),
          taskQueue: h.taskQueue,
          log: warningLog(warnings),
        },
        { claimLimit: 25, fallbackIntervalMs: 50 },
      );
      h.pollers.push(poller);
      poller.start();
      return poller;
    });

    const stop = { set: false };
    const writers = [1, 2, 3].map((w) => writeSteadily(w, stop));
    try {
      await new Promise((r) => setTimeout(r, 4000));
      // However slowly a loaded machine writes, the pollers get enough changes to race on.
      const changedKeys = (): Promise<number> =>
        count('select count(distinct pk)::int as n from public.captured');
      await waitFor('150 changed keys', async () => (await changedKeys()) > 150, 60_000);
    } finally {
      stop.set = true;
      await Promise.all(writers);
    }
    await converged(attempts);
    await Promise.all(pollers.map((p) => p.stop()));

    assert.deepEqual(warnings, [], 'no poll failed');
    assert.deepEqual(
      attempts.filter((a) => a.outcome !== 'started'),
      [],
      'no poller tried to start a batch that another had started',
    );
    const started = (name: string): number => attempts.filter((a) => a.poller === name).length;
    for (const name of ['a', 'b'])
      assert.ok(started(name) > 0, `poller ${name} started no workflow: the pollers did not race`);
    t.diagnostic(`poller a started ${started('a')} workflows, poller b ${started('b')}`);

    // A change is handed to at most one workflow: a key never appears in more workflows than it has
    // changes.
    const { rows: captured } = await h.db.pool.query<{ pk: string; changes: number }>(
      'select pk, count(*)::int as changes from public.captured group by pk',
    );
    const handled = new Map<string, number>();
    for (const a of attempts) for (const k of a.keys) handled.set(k, (handled.get(k) ?? 0) + 1);
    const overHandled = captured.filter((c) => (handled.get(c.pk) ?? 0) > c.changes);
    assert.deepEqual(overHandled, [], 'keys handled by more workflows than they had changes');
    const unhandled = captured.filter((c) => !handled.has(c.pk)).map((c) => c.pk);
    assert.deepEqual(unhandled, [], 'keys whose changes reached no workflow');
    assert.ok(
      captured.length > 150,
      `only ${captured.length} keys changed: the writers did not write enough to race on`,
    );

    // Rows written once were embedded once: a double claim would have embedded them twice.
    const { rows: once } = await h.db.pool.query<{ chunk: string }>(
      `select chunk from products_embeddings where pk in (select pk from public.captured group by pk having count(*) = 1)`,
    );
    const sent = new Map<string, number>();
    for (const text of h.provider.seen) sent.set(text, (sent.get(text) ?? 0) + 1);
    const paidTwice = once
      .filter((r) => sent.get(r.chunk) !== 1)
      .map((r) => `${r.chunk}: ${sent.get(r.chunk) ?? 0}`);
    assert.deepEqual(paidTwice, []);
    assert.ok(once.length > 50);

    // Temporal ran exactly the workflows the pollers started, and each one completed.
    const runs = await closedRuns(`TaskQueue = "${h.taskQueue}"`, attempts.length);
    assert.deepEqual(
      runs.filter((r) => r.status !== 'COMPLETED'),
      [],
    );
    assert.equal(runs.length, attempts.length);
    assert.deepEqual(
      new Set(runs.map((r) => r.workflowId)),
      new Set(attempts.map((a) => a.workflowId)),
    );
  });

  it('a poller killed between starting a workflow and committing its claim loses nothing', async () => {
    await converged();
    // Without a worker the workflow is still running when the healthy poller claims the same rows.
    await h.stopWorker();
    let workerBack = false;
    const attempts: StartAttempt[] = [];
    const doomedApp = `doomed-poller-${process.pid}`;
    const doomedPool = createPool(h.db.url, { max: 2, applicationName: doomedApp });
    try {
      // The moment of the crash: Temporal has accepted the start, the claim has not committed.
      const killClaimConnection = async (): Promise<void> => {
        const killed = await count(
          `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = $1 and datname = current_database()`,
          [doomedApp],
        );
        assert.equal(killed, 1, "the doomed poller's claim connection was not found");
      };
      const doomed = new Poller({
        pool: doomedPool,
        databaseUrl: h.db.url,
        temporal: recordingClient('doomed', attempts, killClaimConnection),
        taskQueue: h.taskQueue,
        log: h.log,
      });
      // It claims at once what the doomed poller stamped, as any poller does once the grace is over.
      const healthy = new Poller(
        {
          pool: h.db.pool,
          databaseUrl: h.db.url,
          temporal: recordingClient('healthy', attempts),
          taskQueue: h.taskQueue,
          log: h.log,
        },
        { stampGraceMs: 0 },
      );

      const { rows } = await h.db.pool.query<{ id: string }>(
        `insert into products (name, description, category) select 'Crash ' || g, 'Claimed by a poller that dies ' || g, 'crash' from generate_series(1, 5) g returning id::text`,
      );
      // The statement's five keys are one outbox row.
      assert.equal(await count('select count(*)::int as n from embedsync.outbox'), 1);
      const outbox = 'select count(*)::int as n from embedsync.outbox_keys';
      assert.equal(await count(outbox), 5);

      await assert.rejects(doomed.pollOnce());
      assert.deepEqual(
        attempts.map((a) => [a.poller, a.outcome]),
        [['doomed', 'started']],
      );
      assert.equal(
        await count(outbox),
        5,
        'the claim of a poller that died before commit must stay in the outbox',
      );

      assert.equal(await healthy.pollOnce(), 5);
      const [started, retried] = attempts;
      assert.deepEqual(
        [retried?.poller, retried?.outcome, retried?.workflowId],
        ['healthy', 'already started', started?.workflowId],
      );
      assert.equal(await count(outbox), 0);

      await h.startWorker();
      workerBack = true;
      await converged(attempts);
      const keys = rows.map((r) => r.id);
      assert.equal(
        await count(
          'select count(distinct pk)::int as n from products_embeddings where pk = any($1::text[])',
          [keys],
        ),
        5,
      );
      assert.equal(h.provider.texts, 5, 'each row embedded once');
      const runs = await closedRuns(`WorkflowId = "${started?.workflowId ?? ''}"`, 1);
      assert.deepEqual(
        runs.map((r) => r.status),
        ['COMPLETED'],
        'the workflow ran once',
      );
    } finally {
      await doomedPool.end();
      if (!workerBack) await h.startWorker();
    }
  });
  it('a poller killed after recording its batches but before starting them: the next claim starts the very same workflows, once the grace is over', async () => {
    await converged();
    await h.stopWorker();
    let workerBack = false;
    const attempts: StartAttempt[] = [];
    const doomedApp = `stamping-poller-${process.pid}`;
    const doomedPool = createPool(h.db.url, { max: 2, applicationName: doomedApp });
    try {
      // It dies as its first start is sent: its batches are recorded, none has started.
      const dies: WorkflowClientInterceptor = {
        async startWithDetails() {
          await h.db.pool.query(
            `select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database()`,
            [doomedApp],
          );
          throw new Error('killed');
        },
      };
      const doomed = new Poller({
        pool: doomedPool,
        databaseUrl: h.db.url,
        temporal: new Client({
          connection: h.client.connection,
          namespace: h.client.options.namespace,
          interceptors: { workflow: [dies] },
        }),
        taskQueue: h.taskQueue,
        log: h.log,
      });
      const poller = (grace: number) =>
        new Poller(
          {
            pool: h.db.pool,
            databaseUrl: h.db.url,
            temporal: recordingClient('next', attempts),
            taskQueue: h.taskQueue,
            log: h.log,
          },
          { stampGraceMs: grace, claimLimit: 3 },
        );
      await h.db.pool.query(
        `insert into products (name, description, category) select 'Stamped ' || g, 'Recorded, never started ' || g, 'stamped' from generate_series(1, 5) g`,
      );
      await assert.rejects(doomed.pollOnce());
      const stamped = await h.db.pool.query<{ started_as: string; keys: number }>(
        `select started_as, coalesce(cardinality(pks), 1)::int as keys from embedsync.outbox order by id`,
      );
      assert.equal(stamped.rows.length, 1, 'the claim left one recorded batch');
      const recorded = stamped.rows[0]?.started_as ?? '';
      assert.match(recorded, /^sync:products:/);
      assert.equal(stamped.rows[0]?.keys, 5);

      // Within the grace it is the doomed poller's: another claim leaves it alone.
      assert.equal(await poller(60_000).pollOnce(), 0);
      assert.equal(attempts.length, 0, 'a stamped batch was started within its grace');
      // Then it is anyone's: the same workflow, with all five keys, though the claim limit is 3.
      await h.db.pool.query(`update embedsync.outbox set started_at = now() - interval '1 minute'`);
      assert.equal(await poller(60_000).pollOnce(), 5);
      assert.deepEqual(
        attempts.map((a) => [a.workflowId, a.outcome, a.keys.length]),
        [[recorded, 'started', 5]],
      );
      assert.equal(await count('select count(*)::int as n from embedsync.outbox'), 0);
      await h.startWorker();
      workerBack = true;
      await converged(attempts);
      assert.equal(h.provider.texts, 5, 'each row embedded once');
    } finally {
      await doomedPool.end();
      if (!workerBack) await h.startWorker();
    }
  });
  it("a statement's row of many keys is claimed in parts of the claim limit, each key started once", async () => {
    await converged();
    await h.stopWorker();
    let workerBack = false;
    const attempts: StartAttempt[] = [];
    const poller = new Poller(
      {
        pool: h.db.pool,
        databaseUrl: h.db.url,
        temporal: recordingClient('small', attempts),
        taskQueue: h.taskQueue,
        log: h.log,
      },
      { claimLimit: 2 },
    );
    try {
      const { rows } = await h.db.pool.query<{ id: string }>(
        `insert into products (name, description, category) select 'Part ' || g, 'Claimed two at a time ' || g, 'parts' from generate_series(1, 5) g returning id::text`,
      );
      const keys = (): Promise<number> =>
        count(`select count(*)::int as n from embedsync.outbox_keys where pipeline = 'products'`);
      const backlog = (): Promise<number> =>
        count(
          `select outbox_backlog::int as n from embedsync.pipeline_status where pipeline = 'products'`,
        );
      assert.equal(await backlog(), 5, 'the status backlog counts keys, not outbox rows');
      const handled: number[] = [];
      for (let n = await poller.pollOnce(); n > 0; n = await poller.pollOnce()) {
        handled.push(n);
        assert.equal(await backlog(), await keys());
      }
      assert.deepEqual(handled, [2, 2, 1]);
      assert.equal(await keys(), 0);
      const started = attempts.flatMap((a) => a.keys).sort();
      assert.deepEqual(
        started,
        rows.map((r) => r.id).sort(),
        'every key started once, in a workflow of its own claim',
      );
      assert.deepEqual(
        attempts.map((a) => a.outcome),
        ['started', 'started', 'started'],
      );

      await h.startWorker();
      workerBack = true;
      await converged(attempts);
      assert.equal(h.provider.texts, 5, 'each row embedded once');
    } finally {
      if (!workerBack) await h.startWorker();
    }
  });
});
