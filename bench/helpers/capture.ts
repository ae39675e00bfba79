// Switching a pipeline's capture on and off between measurements, and putting the database back in
// the same state before each one, so that the only difference between two runs is the triggers.
import { spawn } from 'node:child_process';
import { removeCaptureSql, installCaptureSql } from '../../src/capture/triggers.js';
import type { Pipeline } from '../../src/db/catalog.js';
import {
  CAPTURE_PUBLICATION,
  captureSlotName,
  captureSlotState,
} from '../../src/db/capture-slot.js';
import { qualified, quoteIdent } from '../../src/db/ident.js';
import { withTransaction, type Pool } from '../../src/db/pool.js';
import type { Logger } from '../../src/log.js';
import { WalReader } from '../../src/poller/wal-reader.js';
import { now } from './clock.js';
import { cpuBetween, sampleCpu } from './cpu.js';
import { findPgTool } from './pgbench.js';

/**
 * "no-notify" is a diagnostic: the pipeline's own triggers with their pg_notify taken out. "clear"
 * is the pipeline's triggers with onContentChange: clear, which also mark each changed key.
 * "logical" is logical capture (decision 29): no triggers, the table in the publication, and the WAL
 * reader running while the writes do. "logical-unread" is a diagnostic: the same with the reader
 * stopped, which separates what reading costs from what publishing the table does. "logical-pg" is
 * another: the same slot read by PostgreSQL's own pg_recvlogical, which discards what it receives,
 * i.e. what reading the WAL costs whoever reads it.
 */
export type CaptureMode =
  'without' | 'with' | 'no-notify' | 'clear' | 'logical' | 'logical-unread' | 'logical-pg';

export const MODE_LABEL: Record<CaptureMode, string> = {
  without: 'no triggers',
  with: 'pipeline triggers',
  'no-notify': 'pipeline triggers minus NOTIFY',
  clear: 'pipeline triggers, onContentChange: clear',
  logical: 'logical capture, reader running',
  'logical-unread': 'logical capture, reader stopped',
  'logical-pg': 'logical capture, read by pg_recvlogical',
};

/** The modes whose table is in the publication and whose pipeline's config says logical. */
export const isLogical = (mode: CaptureMode): boolean =>
  mode === 'logical' || mode === 'logical-unread' || mode === 'logical-pg';

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
    case 'logical':
    case 'logical-unread':
    case 'logical-pg':
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
    // Only logical capture's runs have the table in the publication.
    const { rowCount } = await client.query(
      `select 1 from pg_publication_rel r join pg_publication p on p.oid = r.prpubid
        where p.pubname = $1 and r.prrelid = $2::regclass`,
      [CAPTURE_PUBLICATION, qualified(pipeline.sourceSchema, pipeline.sourceTable)],
    );
    const published = (rowCount ?? 0) > 0;
    const logical = isLogical(mode);
    // The reader reads for the pipelines whose config says logical.
    await client.query(
      `update embedsync.pipelines set config = jsonb_set(config, '{source,capture}', to_jsonb($2::text))
        where name = $1`,
      [pipeline.name, logical ? 'logical' : 'trigger'],
    );
    if (published !== logical)
      await client.query(
        `alter publication ${quoteIdent(CAPTURE_PUBLICATION)} ${published ? 'drop' : 'add'} table only ${qualified(pipeline.sourceSchema, pipeline.sourceTable)}`,
      );
  });
}

/**
 * Moves the slot of logical capture to the end of the WAL, where it exists: no run pays for
 * decoding the runs before it (the table was not in the publication then, or their changes were read).
 */
export async function skipWal(pool: Pool): Promise<void> {
  if (!(await captureSlotState(pool))) return;
  await pool.query('select pg_replication_slot_advance($1, pg_current_wal_lsn())', [
    await captureSlotName(pool),
  ]);
}

export interface WithReader<T> {
  result: T;
  /** Each side of reading while fn ran, in % of one core: PostgreSQL's walsender, the reader. */
  walsenderPct?: number;
  readerPct?: number;
  /** WAL the slot was behind when fn ended. */
  lagBytes: number;
  /** From fn's end until the reader had read everything written by then. */
  catchUpMs: number;
}

/**
 * Runs fn while the WAL reader reads as the poller's loop does while changes flow (every 10 ms),
 * then lets it read the rest: until the slot is confirmed past the WAL written by then.
 */
export async function withWalReader<T>(
  pool: Pool,
  databaseUrl: string,
  log: Logger,
  fn: () => Promise<T>,
): Promise<WithReader<T>> {
  const reader = new WalReader({ pool, databaseUrl, log });
  let done = false;
  const loop = (async () => {
    while (!done) {
      await reader.readOnce();
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  let measured: { result: T; walsenderPct?: number; readerPct?: number };
  try {
    measured = await readingCpu(pool, 'embedsync-capture', process.pid, fn);
  } finally {
    done = true;
    await loop;
  }
  try {
    const lagBytes = (await captureSlotState(pool))?.lagBytes ?? 0;
    const started = now();
    const { rows } = await pool.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    for (;;) {
      await reader.readOnce();
      const { rows: slot } = await pool.query<{ past: boolean }>(
        `select confirmed_flush_lsn >= $1::pg_lsn as past from pg_replication_slots where slot_name = $2`,
        [rows[0]?.lsn, await captureSlotName(pool)],
      );
      if (slot[0]?.past !== false) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    return { ...measured, lagBytes, catchUpMs: now() - started };
  } finally {
    await reader.close();
  }
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
  await skipWal(pool);
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

/**
 * Runs fn while PostgreSQL's own pg_recvlogical streams the capture slot and throws away what it
 * receives: the cost of reading the WAL whoever reads it (the walsender's decoding and a client
 * that does nothing with it), against which the WAL reader's own cost shows.
 */
export async function withPgRecvlogical<T>(
  pool: Pool,
  databaseUrl: string,
  fn: () => Promise<T>,
): Promise<{ result: T; walsenderPct?: number; readerPct?: number }> {
  const bin = await findPgTool('pg_recvlogical');
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', 'embedsync-bench-recvlogical');
  const args = [
    ...['-d', url.toString(), '--slot', await captureSlotName(pool), '--start'],
    ...['-o', 'proto_version=1', '-o', `publication_names=${CAPTURE_PUBLICATION}`],
    ...['-f', '/dev/null', '--no-loop'],
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    return await readingCpu(pool, 'embedsync-bench-recvlogical', child.pid, fn, () =>
      child.exitCode === null ? undefined : `pg_recvlogical exited: ${stderr.trim()}`,
    );
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/**
 * fn, and the CPU that reading took meanwhile: the walsender of the replication connection named
 * `applicationName` and the reading process, each in % of one core. Waits (up to 10 s) for that
 * connection to stream first, so fn never runs before its reader does.
 */
async function readingCpu<T>(
  pool: Pool,
  applicationName: string,
  readerPid: number | undefined,
  fn: () => Promise<T>,
  gone: () => string | undefined = () => undefined,
): Promise<{ result: T; walsenderPct?: number; readerPct?: number }> {
  let walsender: number | undefined;
  for (const started = now(); walsender === undefined;) {
    const problem = gone();
    if (problem) throw new Error(problem);
    if (now() - started > 10_000)
      throw new Error(`no walsender named ${applicationName} after 10 s`);
    const { rows } = await pool.query<{ pid: number }>(
      `select pid from pg_stat_activity
        where backend_type = 'walsender' and application_name = $1
          and datname = current_database()`,
      [applicationName],
    );
    walsender = rows[0]?.pid;
    if (walsender === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  const pids = { walsender, reader: readerPid };
  const before = sampleCpu(pids);
  const result = await fn();
  const use = cpuBetween(before, sampleCpu(pids))?.processPctOfCore ?? {};
  return {
    result,
    ...(use.walsender === undefined ? {} : { walsenderPct: use.walsender }),
    ...(use.reader === undefined ? {} : { readerPct: use.reader }),
  };
}
