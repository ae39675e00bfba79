// The worker's metrics: what the activities did, counted as they do it. Each worker builds its own
// registry (never prom-client's global one), so a test can run several and read each. Labels are
// bounded: pipeline and provider names, and closed sets of outcomes; never a key or batch id.
import { Counter, Histogram, Registry } from 'prom-client';

/**
 * How a provider request ended, as the embed activity classifies its failure
 * (activities/errors.ts).
 */
export type RequestOutcome = 'ok' | 'rate_limited' | 'retryable' | 'refused';

/** What the write stage did with each row of a batch (the fields of WriteResult). */
export type WriteOutcome = 'written' | 'metadata_updated' | 'deleted' | 'stale' | 'swept';

export interface WorkerMetrics {
  registry: Registry;
  rowsWritten: Counter<'pipeline' | 'outcome'>;
  chunksWritten: Counter<'pipeline'>;
  tokensEmbedded: Counter<'pipeline' | 'provider'>;
  providerRequests: Counter<'pipeline' | 'provider' | 'outcome'>;
  rateBucketWait: Histogram<'provider'>;
  syncLatency: Histogram<'pipeline'>;
}

export function createWorkerMetrics(registry = new Registry()): WorkerMetrics {
  const registers = [registry];
  return {
    registry,
    rowsWritten: new Counter({
      name: 'embedsync_rows_written_total',
      help:
        'Rows of a batch handled by the write stage, by outcome: written (chunks replaced), metadata_updated, ' +
        'deleted, stale (the source moved on since fetch; a newer change writes it), swept (after a TRUNCATE).',
      labelNames: ['pipeline', 'outcome'],
      registers,
    }),
    chunksWritten: new Counter({
      name: 'embedsync_chunks_written_total',
      help: 'Chunks (vector rows) inserted into vector tables.',
      labelNames: ['pipeline'],
      registers,
    }),
    tokensEmbedded: new Counter({
      name: 'embedsync_tokens_embedded_total',
      help: 'Tokens the provider counted for the chunks it embedded (an estimate where it reports none).',
      labelNames: ['pipeline', 'provider'],
      registers,
    }),
    providerRequests: new Counter({
      name: 'embedsync_provider_requests_total',
      help:
        'Embedding requests sent to a provider, by outcome: ok, rate_limited (429 or throttled), ' +
        'retryable (5xx, timeout, connection), refused (retrying cannot help: input, credentials, quota, model).',
      labelNames: ['pipeline', 'provider', 'outcome'],
      registers,
    }),
    rateBucketWait: new Histogram({
      name: 'embedsync_rate_bucket_wait_seconds',
      help: "Time a request waited for its turn in the provider's shared rate buckets.",
      labelNames: ['provider'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20],
      registers,
    }),
    syncLatency: new Histogram({
      name: 'embedsync_sync_latency_seconds',
      help: 'From the earliest change of a sync batch entering the outbox to its write committing (database clock).',
      labelNames: ['pipeline'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600],
      registers,
    }),
  };
}
