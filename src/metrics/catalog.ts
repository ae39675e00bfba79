// The poller's metrics: the state of every pipeline, read from Postgres when Prometheus scrapes
// (one time-boxed query per scrape, shared by all the gauges), so they say what the database says,
// like `npx embedsync status` and the embedsync.pipeline_status view they are read from.
import { Gauge, Registry } from 'prom-client';
import { captureSlotState } from '../db/capture-slot.js';
import { withTransaction, type Pool } from '../db/pool.js';
import type { Logger } from '../log.js';

/** How long a scrape may spend in Postgres; counting a huge outbox must not hold connections. */
export const CATALOG_QUERY_TIMEOUT_MS = 2000;

export interface PipelineSnapshot {
  pipeline: string;
  outboxBacklog: number;
  /** Seconds since the oldest waiting change entered the outbox; null when none waits. */
  oldestChangeAge: number | null;
  deadLetters: number;
  syncedRows: number;
  /** Null until a backfill has counted the table. */
  totalRows: number | null;
  /** Batches whose stage failed 3 times in a row, or for good (embedsync.stuck_batches). */
  stuckBatches: number;
}

export async function readPipelineSnapshots(
  pool: Pool,
  timeoutMs = CATALOG_QUERY_TIMEOUT_MS,
): Promise<PipelineSnapshot[]> {
  // The statement timeout bounds the query; this bounds the wait for a connection of the busy pool
  // too.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer from Postgres within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  return Promise.race([read(pool, timeoutMs), late]).finally(() => clearTimeout(timer));
}

async function read(pool: Pool, timeoutMs: number): Promise<PipelineSnapshot[]> {
  return withTransaction(pool, async (client) => {
    await client.query(`select set_config('statement_timeout', $1, true)`, [String(timeoutMs)]);
    const { rows } = await client.query<PipelineSnapshot>(
      `select pipeline,
              outbox_backlog::float8                       as "outboxBacklog",
              extract(epoch from oldest_change_age)::float8 as "oldestChangeAge",
              dead_letters::float8                         as "deadLetters",
              synced_rows::float8                          as "syncedRows",
              total_rows::float8                           as "totalRows",
              stuck_batches::float8                        as "stuckBatches"
         from embedsync.pipeline_status`,
    );
    return rows;
  });
}

export interface CatalogMetrics {
  registry: Registry;
}

/** Registers the scrape-time gauges on a registry of the poller's. */
export function createCatalogMetrics(
  pool: Pool,
  log: Logger,
  registry = new Registry(),
): CatalogMetrics {
  const registers = [registry];
  // A scrape starts every gauge's collect at once: they share the one reading in flight, and the
  // next scrape takes a new one.
  let reading: Promise<PipelineSnapshot[] | undefined> | undefined;
  const snapshots = (): Promise<PipelineSnapshot[] | undefined> => {
    reading ??= readPipelineSnapshots(pool)
      .catch((err: unknown) => {
        const why = (err as Error).message;
        log.warn(
          { err: why },
          'could not read the pipelines for /metrics; embedsync_catalog_up is 0',
        );
        return undefined;
      })
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };

  /**
   * A per-pipeline gauge; its series are replaced at every scrape, so a removed pipeline's
   * disappear.
   */
  const perPipeline = (
    name: string,
    help: string,
    value: (s: PipelineSnapshot) => number | null,
  ): void => {
    new Gauge({
      name,
      help,
      labelNames: ['pipeline'],
      registers,
      async collect() {
        const rows = await snapshots();
        this.reset();
        for (const s of rows ?? []) {
          const v = value(s);
          if (v !== null) this.set({ pipeline: s.pipeline }, v);
        }
      },
    });
  };

  new Gauge({
    name: 'embedsync_catalog_up',
    help:
      "Whether this scrape could read the pipelines' state from Postgres (1) or not (0: the other " +
      'embedsync gauges are absent).',
    registers,
    async collect() {
      this.set((await snapshots()) === undefined ? 0 : 1);
    },
  });
  perPipeline(
    'embedsync_outbox_backlog',
    'Captured changes waiting in the outbox.',
    (s) => s.outboxBacklog,
  );
  perPipeline(
    'embedsync_outbox_oldest_change_age_seconds',
    'Age of the oldest change waiting in the outbox; 0 when none waits.',
    (s) => s.oldestChangeAge ?? 0,
  );
  perPipeline(
    'embedsync_dead_letters',
    'Rows in embedsync.dead_letters: refused by the provider, or of failed batches.',
    (s) => s.deadLetters,
  );
  perPipeline(
    'embedsync_backfill_synced_rows',
    'Rows the backfill (or re-embed) has synced.',
    (s) => s.syncedRows,
  );
  perPipeline(
    'embedsync_backfill_total_rows',
    'Rows the backfill counted in the source table when it started.',
    (s) => s.totalRows,
  );
  perPipeline(
    'embedsync_stuck_batches',
    'Batches whose stage failed 3 times in a row, or failed for good (embedsync.stuck_batches).',
    (s) => s.stuckBatches,
  );
  new Gauge({
    name: 'embedsync_capture_slot_lag_bytes',
    help:
      "WAL written since logical capture's slot last advanced: what the server keeps for it (decision " +
      '29). Absent when no pipeline captures logically; a growing value is a reader that is not running.',
    labelNames: ['slot', 'wal_status'],
    registers,
    async collect() {
      this.reset();
      const slot = await captureSlotState(pool).catch(() => undefined);
      if (slot)
        this.set({ slot: slot.slot, wal_status: slot.walStatus ?? 'unknown' }, slot.lagBytes);
    },
  });
  return { registry };
}
