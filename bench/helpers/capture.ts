// Switching a pipeline's capture on and off between measurements, and putting the database back in
// the same state before each one, so that the only difference between two runs is the triggers.
import { removeCaptureSql, installCaptureSql } from '../../src/capture/triggers.js';
import type { Pipeline } from '../../src/db/catalog.js';
import { withTransaction, type Pool } from '../../src/db/pool.js';

/**
 * "no-notify" is a diagnostic: the pipeline's own triggers with their pg_notify taken out. "clear"
 * is the pipeline's triggers with onContentChange: clear, which also mark each changed key.
 */
export type CaptureMode = 'without' | 'with' | 'no-notify' | 'clear';

export const MODE_LABEL: Record<CaptureMode, string> = {
  without: 'no triggers',
  with: 'pipeline triggers',
  'no-notify': 'pipeline triggers minus NOTIFY',
  clear: 'pipeline triggers, onContentChange: clear',
};

// The wake-up the capture functions end with (src/capture/triggers.ts).
const NOTIFY_BLOCK = /\n\s*if found then\s*\n\s*perform pg_notify\([^;]*\);\s*\n\s*end if;/;

/**
 * Whether the installed capture sends a NOTIFY at all, i.e. whether "no-notify" differs from
 * "with".
 */
export const captureNotifies = (pipeline: Pipeline): boolean =>
  installCaptureSql(pipeline).some((sql) => NOTIFY_BLOCK.test(sql));

function captureSql(pipeline: Pipeline, mode: CaptureMode): string[] {
  switch (mode) {
    // Dropped rather than disabled: PostgreSQL still collects transition tables for a disabled
    // trigger that declares them, so a disabled capture is not a free one.
    case 'without':
      return removeCaptureSql(pipeline);
    case 'with':
      return installCaptureSql(pipeline);
    case 'no-notify':
      return installCaptureSql(pipeline).map((sql) => sql.replace(NOTIFY_BLOCK, ''));
    case 'clear':
      return installCaptureSql({
        ...pipeline,
        config: { ...pipeline.config, onContentChange: 'clear' as const },
      });
  }
}

export async function setCapture(pool: Pool, pipeline: Pipeline, mode: CaptureMode): Promise<void> {
  const sql = captureSql(pipeline, mode);
  await withTransaction(pool, async (client) => {
    for (const statement of sql) await client.query(statement);
  });
}

/**
 * Empties the outbox (and the marks of clear), vacuums the source table and checkpoints: every run starts with the same
 * empty outbox, no dead tuples left by the run before, and no checkpoint debt. CHECKPOINT needs a
 * superuser (or pg_checkpoint); without one the runs are still comparable, only noisier. Returns
 * whether it could.
 */
export async function settle(pool: Pool, table: string): Promise<boolean> {
  await pool.query('truncate embedsync.outbox');
  await pool.query('truncate embedsync.stale_keys');
  await pool.query(`vacuum (analyze) ${table}`);
  try {
    await pool.query('checkpoint');
    return true;
  } catch {
    return false;
  }
}

/** Keys queued, however many per outbox row. */
export async function outboxKeys(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    'select count(*)::int as n from embedsync.outbox_keys',
  );
  return rows[0]?.n ?? 0;
}

export interface LockWaits<T> {
  result: T;
  /** Mean number of sessions found waiting for the NOTIFY commit lock, over `samples` looks. */
  meanWaiting: number;
  samples: number;
}

/**
 * Runs fn while looking, every 100 ms, at how many sessions wait for the lock every notifying
 * transaction takes from pre-commit until its commit is flushed: an object lock on "database 0"
 * (class pg_database, oid 0), i.e. one lock for the whole cluster.
 */
export async function withNotifyLockWaits<T>(
  pool: Pool,
  fn: () => Promise<T>,
): Promise<LockWaits<T>> {
  let done = false;
  let waiting = 0;
  let samples = 0;
  const sampler = (async () => {
    while (!done) {
      const { rows } = await pool.query<{ n: number }>(
        `select count(*)::int as n from pg_locks
          where locktype = 'object' and database = 0 and classid = 'pg_database'::regclass
            and objid = 0 and not granted`,
      );
      waiting += rows[0]?.n ?? 0;
      samples += 1;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    return { result: await fn(), meanWaiting: samples ? waiting / samples : 0, samples };
  } finally {
    done = true;
    await sampler;
  }
}
