// Logical capture's reader (docs/architecture.md, decision 29): WAL → outbox, run by the poller
// before each claim while some pipeline captures logically. Peek whole transactions from the slot,
// queue their keys and commit, then advance the slot past them: a crash between the two reads them
// again (the same keys twice, harmless), never skips one. One reader per database at a time.
import { listLogicalCapture } from '../db/catalog.js';
import {
  advanceCaptureSlot,
  anyLogicalCapture,
  captureSlotName,
  captureSlotState,
  markCapturePosition,
  peekCapture,
  WAL_READER_LOCK,
} from '../db/capture-slot.js';
import { enqueueKeyRuns } from '../db/outbox.js';
import type { Pool, PoolClient } from '../db/pool.js';
import type { Logger } from '../log.js';
import { decodeMessage, formatLsn } from '../capture/pgoutput.js';
import { decodeChanges, type KeyRun } from '../capture/wal-changes.js';

export interface WalReaderOptions {
  /** About how many changes one read takes (whole transactions: a large one is taken whole). */
  changeLimit: number;
  /**
   * How far (bytes) the slot may stay behind while the watched tables are idle and others are not,
   * before the reader writes a marker to move it on (pgoutput sends nothing for those writes).
   */
  idleLagBytes: number;
  /** Between the outbox's commit and the slot's advance: tests inject a crash here. */
  afterCommit?: () => Promise<void>;
}

export const DEFAULT_WAL_READER_OPTIONS: WalReaderOptions = {
  changeLimit: 20_000,
  idleLagBytes: 256 * 1024,
};

/** The capture slot is gone: changes since it was lost were not captured. */
export class CaptureSlotMissingError extends Error {
  constructor(readonly slot: string) {
    super(
      `the replication slot ${slot} of logical capture does not exist (dropped, or invalidated past max_slot_wal_keep_size): ` +
        'changes since then were not captured; run `npx embedsync apply` (it creates the slot again) and then a backfill of each logical pipeline',
    );
    this.name = 'CaptureSlotMissingError';
  }
}

export interface WalReadResult {
  /** Whether this reader held the slot: false when another read it, or none captures logically. */
  read: boolean;
  transactions: number;
  keys: number;
}

const NOTHING: WalReadResult = { read: false, transactions: 0, keys: 0 };

export class WalReader {
  private readonly options: WalReaderOptions;
  private markedAt = 0;
  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    options: Partial<WalReaderOptions> = {},
  ) {
    this.options = { ...DEFAULT_WAL_READER_OPTIONS, ...options };
  }

  /** One read: nothing to do when no pipeline captures logically or another reader holds the slot. */
  async readOnce(): Promise<WalReadResult> {
    const pipelines = await listLogicalCapture(this.pool);
    if (pipelines.length === 0) return NOTHING;
    const client = await this.pool.connect();
    try {
      const { rows } = await client.query<{ locked: boolean }>(
        'select pg_try_advisory_lock($1) as locked',
        [WAL_READER_LOCK],
      );
      if (!rows[0]?.locked) return NOTHING;
      try {
        return await this.read(client, pipelines);
      } finally {
        await client.query('select pg_advisory_unlock($1)', [WAL_READER_LOCK]);
      }
    } finally {
      client.release();
    }
  }

  private async read(
    client: PoolClient,
    pipelines: Awaited<ReturnType<typeof listLogicalCapture>>,
  ): Promise<WalReadResult> {
    const slot = await captureSlotName(client);
    let messages;
    try {
      messages = await peekCapture(client, slot, this.options.changeLimit);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Another session reads the slot (not an embedsync reader: they take the lock): next time.
      if (code === '55006') return NOTHING;
      // Dropped by the removal of the last logical pipeline since the list was read: nothing to do.
      if (code === '42704' && !(await anyLogicalCapture(client))) return NOTHING;
      if (code === '42704') throw new CaptureSlotMissingError(slot);
      throw err;
    }
    const decoded = decodeChanges(
      messages.map((m) => decodeMessage(m.data)),
      pipelines,
    );
    for (const u of decoded.unreadable)
      this.log.warn(
        { pipeline: u.pipeline, changes: u.count },
        'skipped changes whose key columns are not in the table any more; the schema check holds the pipeline until apply and backfill',
      );
    if (decoded.endLsn === undefined) {
      await this.moveOnWhenIdle(client);
      return { read: true, transactions: 0, keys: 0 };
    }
    await client.query('begin');
    try {
      for (const p of pipelines) {
        const runs = decoded.runs.filter((r) => r.pipeline === p.name);
        if (runs.length > 0) await this.enqueue(client, p, runs);
      }
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    }
    await this.options.afterCommit?.();
    await advanceCaptureSlot(client, slot, formatLsn(decoded.endLsn));
    const keys = decoded.runs.reduce((n, r) => n + Math.max(r.keys.length, 1), 0);
    return { read: true, transactions: decoded.transactions, keys };
  }

  /**
   * A pipeline's runs in one statement; when a key no longer parses as its column's type (retyped
   * under the pipeline), run by run, skipping the runs that do not: the schema check holds the
   * pipeline meanwhile.
   */
  private async enqueue(
    client: PoolClient,
    p: Awaited<ReturnType<typeof listLogicalCapture>>[number],
    runs: KeyRun[],
  ): Promise<number> {
    const attempt = async (some: KeyRun[]): Promise<number | undefined> => {
      await client.query('savepoint wal_runs');
      try {
        const n = await enqueueKeyRuns(client, p, some);
        await client.query('release savepoint wal_runs');
        return n;
      } catch (err) {
        await client.query('rollback to savepoint wal_runs');
        if (!(err as { code?: string }).code?.startsWith('22')) throw err;
        return undefined;
      }
    };
    const all = await attempt(runs);
    if (all !== undefined) return all;
    let n = 0;
    for (const run of runs) {
      const one = await attempt([run]);
      if (one === undefined)
        this.log.warn(
          { pipeline: p.name, op: run.op, keys: run.keys.length },
          'skipped changes whose keys do not parse as the key columns’ types; the schema check holds the pipeline until apply and backfill',
        );
      n += one ?? 0;
    }
    return n;
  }

  /**
   * Writes a marker to read past when the slot keeps more WAL than idleLagBytes. A marker commits
   * nothing, so it is readable once the WAL writer has flushed it (within wal_writer_delay): one a
   * second is plenty.
   */
  private async moveOnWhenIdle(client: PoolClient): Promise<void> {
    if (Date.now() - this.markedAt < 1000) return;
    const state = await captureSlotState(client);
    if (!state || state.lagBytes <= this.options.idleLagBytes) return;
    await markCapturePosition(client);
    this.markedAt = Date.now();
  }
}
