// Index upkeep and the per-pipeline schedules (docs/architecture.md, decision 24): a reindex runs
// while the application writes and searches, none of them waiting on it; an index a failed build
// left invalid is built again; apply creates a pipeline's Temporal Schedules, updates them when the
// config changes, leaves a pause the user made, and remove deletes them; a triggered verify
// schedule runs verify and re-queues what it finds.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { after, before, describe, it } from 'node:test';
import { ScheduleNotFoundError } from '@temporalio/client';
import { reindexPipeline } from '../../src/capture/reindex.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import {
  deleteSchedules,
  syncSchedules,
  upkeepScheduleId,
  upkeepStatus,
} from '../../src/temporal/schedules.js';
import type { UpkeepResult } from '../../workflows/upkeep.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { getPipeline, type Pipeline } from '../../src/db/catalog.js';
import { qualified } from '../../src/db/ident.js';
import { featureHashEmbedding } from '../../src/providers/offline.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import {
  applyPipeline,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

before(async () => {
  h = await startHarness('upkeep');
});
after(async () => {
  await h?.stop();
});

/** A products table of its own with `rows` rows, its pipeline applied and every row synced. */
async function syncedTable(base: string, rows: number): Promise<Pipeline> {
  const name = uniqueName(base);
  await h.db.pool.query(
    `create table ${name} (id bigint primary key, name text, description text, category text,
                           price numeric(10, 2), in_stock boolean not null default true)`,
  );
  await applyPipeline(h, productsPipeline({ name, source: { table: name } }));
  await h.db.pool.query(
    `insert into ${name} select g, 'Item ' || g, 'Description of item ' || g, 'c' || (g % 7), g, true
       from generate_series(1, $1::int) g`,
    [rows],
  );
  await inStep(name);
  return getPipeline(h.db.pool, name);
}

async function inStep(name: string): Promise<void> {
  await waitFor(`${name} in step`, async () => {
    const r = await verifyPipeline(h.db.pool, name);
    return r.missing.length + r.stale.length + r.orphaned.length === 0 && r.rows > 0;
  });
}

/** Runs `body` up to `max` times on a connection of its own until stopped; counts failures. */
function loop(
  body: (q: (sql: string, params?: unknown[]) => Promise<unknown>, i: number) => Promise<unknown>,
  max: number,
) {
  let running = true;
  let done = 0;
  const failures: string[] = [];
  const finished = (async () => {
    const client = await h.db.pool.connect();
    try {
      // A statement blocked behind the rebuild fails instead of hanging the test.
      await client.query(`set lock_timeout = '10s'`);
      while (running && done < max) {
        try {
          await body((sql, params) => client.query(sql, params), done);
        } catch (err) {
          failures.push((err as Error).message);
        }
        done += 1;
      }
    } finally {
      client.release();
    }
  })();
  return {
    get done() {
      return done;
    },
    async stop() {
      running = false;
      await finished;
      return { done, failures };
    },
  };
}

const indexValid = async (regclass: string): Promise<boolean | undefined> => {
  const { rows } = await h.db.pool.query<{ valid: boolean }>(
    `select indisvalid as valid from pg_index where indexrelid = to_regclass($1)`,
    [regclass],
  );
  return rows[0]?.valid;
};

describe('reindex', () => {
  it('rebuilds the index concurrently while writes, their sync and searches go on', async () => {
    const p = await syncedTable('reindex_live', 300);
    const vectors = qualified(p.vectorSchema, p.vectorTable);
    const source = qualified(p.sourceSchema, p.sourceTable);
    // Churn, so the index has dead tuples to shed.
    for (let round = 0; round < 3; round += 1)
      await h.db.pool.query(`update ${source} set description = description || ' v' || $1`, [
        round,
      ]);
    await inStep(p.name);

    // A transaction that has written to the vector table holds the rebuild at its wait for older
    // writers: the rebuild is certainly under way while the loops below run.
    const holder = await h.db.pool.connect();
    const writes = loop(
      (q, i) =>
        q(`update ${source} set description = 'Rewritten ' || $1::int where id = $2`, [
          i,
          (i % 300) + 1,
        ]),
      400,
    );
    const searches = loop(
      (q, i) =>
        q(`select pk from ${vectors} order by embedding <=> $1 limit 10`, [
          JSON.stringify(featureHashEmbedding(`query ${i}`, 64)),
        ]),
      400,
    );
    let reindex: ReturnType<typeof reindexPipeline> | undefined;
    try {
      await holder.query('begin');
      await holder.query(`update ${vectors} set content_hash = content_hash where false`);
      reindex = reindexPipeline(h.db.pool, p);
      await waitFor('the rebuild waiting on the open writer', async () => {
        const { rows } = await h.db.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
            where datname = current_database() and query ilike 'reindex index concurrently%'
              and wait_event_type = 'Lock'`,
        );
        return rows[0]?.n === 1;
      });
      const writesBefore = writes.done;
      const searchesBefore = searches.done;
      // While the rebuild is held mid-way: the application's writes, their sync into the vector
      // table, and searches of it all complete.
      await waitFor('writes and searches during the rebuild', () =>
        Promise.resolve(writes.done >= writesBefore + 20 && searches.done >= searchesBefore + 20),
      );
      const w = await writes.stop();
      await inStep(p.name);
      await holder.query('commit');
      const r = await reindex;
      const s = await searches.stop();
      assert.deepEqual(w.failures, []);
      assert.deepEqual(s.failures, []);
      assert.equal(r.action, 'reindexed');
      assert.equal(r.index, `${p.vectorSchema}.${p.vectorTable}_hnsw`);
      assert.ok(r.bytesBefore > 0 && r.bytesAfter > 0, JSON.stringify(r));
      assert.equal(await indexValid(r.index), true);
      // The rebuild's copy (<index>_ccnew) is gone with the swap.
      const { rows } = await h.db.pool.query<{ names: string[] }>(
        `select array_agg(indexname::text order by indexname) as names from pg_indexes
          where tablename = $1`,
        [p.vectorTable],
      );
      // The primary key, the HNSW index and the full-text index (decision 27), no more.
      assert.deepEqual(
        rows[0]?.names,
        ['_fts', '_hnsw', '_pkey'].map((suffix) => `${p.vectorTable}${suffix}`),
      );
      await inStep(p.name);
    } finally {
      await holder.query('rollback').catch(() => undefined);
      holder.release();
      await writes.stop();
      await searches.stop();
      await reindex?.catch(() => undefined);
    }
  });

  it('drops an index left invalid and builds it again', async () => {
    const p = await syncedTable('reindex_invalid', 50);
    const index = `${p.vectorSchema}.${p.vectorTable}_hnsw`;
    // What a CREATE INDEX CONCURRENTLY cut short leaves: the index, marked invalid.
    await h.db.pool.query(
      `update pg_index set indisvalid = false where indexrelid = $1::regclass`,
      [index],
    );
    assert.equal(await indexValid(index), false);
    const r = await reindexPipeline(h.db.pool, p);
    assert.equal(r.action, 'rebuilt invalid');
    assert.ok(r.bytesAfter > 0);
    assert.equal(await indexValid(index), true);
  });

  it('names the pipeline when a column pipeline has no index to rebuild', async () => {
    const name = uniqueName('reindex_column');
    await h.db.pool.query(
      `create table ${name} (id bigint primary key, name text, description text)`,
    );
    await applyPipeline(
      h,
      productsPipeline({
        name,
        source: { table: name },
        metadata: [],
        destination: { column: 'embedding' },
      }),
    );
    await assert.rejects(
      reindexPipeline(h.db.pool, await getPipeline(h.db.pool, name)),
      (err: Error) => {
        assert.match(err.message, new RegExp(`pipeline ${name} .*destination.index`));
        return true;
      },
    );
  });
});

describe('upkeep schedules', () => {
  it('apply creates them, a trigger runs verify and requeue, config changes update them, a pause stays, remove deletes them', async () => {
    const p = await syncedTable('upkeep_sched', 40);
    const base = productsPipeline({ name: p.name, source: { table: p.sourceTable } });
    const configs = (upkeep: PipelineInput['upkeep']) =>
      parsePipelines({ pipelines: [{ ...base, upkeep }] });
    const verifyId = upkeepScheduleId('verify', p.name);
    const reindexId = upkeepScheduleId('reindex', p.name);
    const verifyHandle = h.client.schedule.getHandle(verifyId);
    const reindexHandle = h.client.schedule.getHandle(reindexId);
    try {
      // Without upkeep, a pipeline has no schedules.
      assert.deepEqual(await syncSchedules(h.client, h.taskQueue, configs(undefined)), []);

      const first = configs({ verifyEvery: '6h', requeue: true, reindexEvery: '7d' });
      await applyPipelines(h.db.pool, first);
      assert.deepEqual(await syncSchedules(h.client, h.taskQueue, first), [
        { id: verifyId, outcome: 'created' },
        { id: reindexId, outcome: 'created' },
      ]);
      const described = await verifyHandle.describe();
      assert.equal(described.spec.intervals?.[0]?.every, 6 * 3600 * 1000);
      assert.equal(described.state.paused, false);
      assert.equal(described.memo?.pipeline, p.name);
      assert.equal(described.action.type, 'startWorkflow');
      assert.equal(described.action.workflowType, 'upkeep');
      assert.equal(described.action.taskQueue, h.taskQueue);
      assert.equal((await reindexHandle.describe()).spec.intervals?.[0]?.every, 7 * 86_400 * 1000);

      // A vector lost behind embedsync's back: the triggered verify finds it and re-queues it.
      await h.db.pool.query(
        `delete from ${qualified(p.vectorSchema, p.vectorTable)} where pk = '7'`,
      );
      const verified = await runOnce(verifyHandle);
      assert.equal(verified.verify?.missing, 1);
      assert.deepEqual(verified.verify?.examples, ['7']);
      assert.equal(verified.verify?.requeued, 1);
      assert.equal(verified.reindex, undefined);
      await inStep(p.name); // the sync repaired what was re-queued
      // status reads the latest run and what it found.
      const [seen] = await upkeepStatus(h.client, p.name);
      assert.equal(seen?.id, verifyId);
      assert.equal(seen?.everySeconds, 6 * 3600);
      assert.equal(seen?.paused, false);
      assert.equal(seen?.lastRun?.status, 'COMPLETED');
      assert.deepEqual(seen?.lastRun?.result, verified);

      const reindexed = await runOnce(reindexHandle);
      assert.equal(reindexed.reindex?.action, 'reindexed');
      assert.ok((reindexed.reindex?.bytesAfter ?? 0) > 0);

      // The user pauses the reindex schedule in the Web UI; a config change updates the verify
      // interval, and leaves that pause as it is.
      await reindexHandle.pause('paused by the operator');
      const second = configs({ verifyEvery: '12h', reindexEvery: '14d' });
      assert.deepEqual(await syncSchedules(h.client, h.taskQueue, second), [
        { id: verifyId, outcome: 'updated' },
        { id: reindexId, outcome: 'updated', paused: true },
      ]);
      assert.equal((await verifyHandle.describe()).spec.intervals?.[0]?.every, 12 * 3600 * 1000);
      const paused = await reindexHandle.describe();
      assert.equal(paused.state.paused, true);
      assert.equal(paused.state.note, 'paused by the operator');
      assert.equal(paused.spec.intervals?.[0]?.every, 14 * 86_400 * 1000);
      // Requeue off now: a run only reports.
      const action = (await verifyHandle.describe()).action;
      assert.deepEqual(action.type === 'startWorkflow' ? action.args : undefined, [
        { pipeline: p.name, verify: { requeue: false } },
      ]);

      // Leaving reindexEvery out deletes its schedule.
      assert.deepEqual(
        await syncSchedules(h.client, h.taskQueue, configs({ verifyEvery: '12h' })),
        [
          { id: verifyId, outcome: 'updated' },
          { id: reindexId, outcome: 'deleted' },
        ],
      );
      await assert.rejects(reindexHandle.describe(), ScheduleNotFoundError);

      // remove
      assert.deepEqual(await deleteSchedules(h.client, p.name), [verifyId]);
      await assert.rejects(verifyHandle.describe(), ScheduleNotFoundError);
    } finally {
      await deleteSchedules(h.client, p.name).catch(() => undefined);
    }
  });
});

/** Triggers a schedule once and returns the result of the run it started. */
async function runOnce(
  handle: ReturnType<Harness['client']['schedule']['getHandle']>,
): Promise<UpkeepResult> {
  const before = (await handle.describe()).info.recentActions.length;
  await handle.trigger();
  const workflowId = await waitFor(`a run of schedule ${handle.scheduleId}`, async () => {
    const d = await handle.describe();
    const started = [
      ...d.info.runningActions,
      ...d.info.recentActions.slice(before).map((r) => r.action),
    ];
    return started[0]?.workflow.workflowId;
  });
  return h.client.workflow.getHandle<() => Promise<UpkeepResult>>(workflowId).result();
}

/** `embedsync <command> …` as a user runs it, against this file's database and task queue. */
async function cli(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['bin/embedsync.js', command, ...args], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    env: { ...process.env, DATABASE_URL: h.db.url, EMBEDSYNC_TASK_QUEUE: h.taskQueue, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  try {
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return { code, ...out };
  } finally {
    clearTimeout(timer);
  }
}

describe('the commands', () => {
  it('reindex prints sizes as JSON, and names a pipeline it cannot find', async () => {
    const p = await syncedTable('reindex_cli', 30);
    const r = await cli('reindex', ['--table', p.name, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { action: string; index: string; bytesAfter: number };
    assert.equal(result.action, 'reindexed');
    assert.equal(result.index, `${p.vectorSchema}.${p.vectorTable}_hnsw`);
    assert.ok(result.bytesAfter > 0);
    const missing = await cli('reindex', ['--table', 'no_such_pipeline']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr.trim(), /^embedsync: no pipeline named "no_such_pipeline"/);
    assert.doesNotMatch(missing.stderr, /^\s+at /m);
  });

  it('apply without Temporal applies the database part and says the schedules are not; remove deletes them', async () => {
    const name = uniqueName('upkeep_cli');
    await h.db.pool.query(`create table ${name} (id bigint primary key, name text)`);
    const file = path.join(os.tmpdir(), `${name}.yaml`);
    writeFileSync(
      file,
      stringify({
        pipelines: [
          {
            name,
            source: { table: name },
            embed: { columns: ['name'] },
            embedding: { provider: 'offline', dimensions: 32 },
            upkeep: { verifyEvery: '6h' },
          },
        ],
      }),
    );
    const verifyId = upkeepScheduleId('verify', name);
    try {
      const away = await cli('apply', ['--config', file], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
      assert.equal(away.code, 1);
      assert.match(away.stdout, new RegExp(`^${name}: created`));
      assert.match(away.stderr, /cannot reach Temporal at 127\.0\.0\.1:1 \(TEMPORAL_ADDRESS\)/);
      assert.match(
        away.stderr,
        new RegExp(`applied in the database, but their upkeep schedules \\(${verifyId}\\) are not`),
      );
      assert.equal((await getPipeline(h.db.pool, name)).name, name);
      await assert.rejects(h.client.schedule.getHandle(verifyId).describe(), ScheduleNotFoundError);

      const applied = await cli('apply', ['--config', file]);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, new RegExp(`schedule ${verifyId}: created`));
      assert.equal((await h.client.schedule.getHandle(verifyId).describe()).state.paused, false);

      const removed = await cli('remove', ['--table', name]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(removed.stdout, new RegExp(`schedule ${verifyId}: deleted`));
      await assert.rejects(h.client.schedule.getHandle(verifyId).describe(), ScheduleNotFoundError);
    } finally {
      await deleteSchedules(h.client, name).catch(() => undefined);
    }
  });
});
