// The facts `npx embedsync status` shows: the database's (the pipeline_status view) and, when
// Temporal can be reached, its running workflows and backfill progress. The database facts never
// wait on Temporal.
import type { Client } from '@temporalio/client';
import { checkSourceSchemas } from '../capture/schema-check.js';
import { partCounts, type PartCounts } from '../db/batch-parts.js';
import { priceSpend, type PipelineSpend } from '../cost/spend.js';
import { findAnyPipeline, isEventsPipeline } from '../db/catalog.js';
import { describeSink } from '../sinks/payload.js';
import { countFailedDeliveries, type FailedDeliveryCount } from '../db/deliveries.js';
import { readStateReasons, type HoldFacts } from '../db/pipeline-state.js';
import type { Pool } from '../db/pool.js';
import { readRateObservations } from '../db/rate-observations.js';
import { countSourceRows } from '../db/source.js';
import { clearsOnChange, countStaleKeys } from '../db/stale-keys.js';
import { readLedger } from '../db/token-ledger.js';
import { countSyncedRows, readPipelineFacts, type PipelineFacts } from './queries.js';
import { walkMissing } from './state.js';
import { captureStatus, type CaptureStatus } from './capture.js';
import { captureSlotName, captureSlotState } from '../db/capture-slot.js';
import { readStuck, type StuckBatchStatus } from './stuck.js';
import { pipelineWorkflows, type PipelineWorkflows, type WebUi } from './temporal.js';

export { countSyncedRows, readPipelineFacts, type PipelineFacts } from './queries.js';
export * from './temporal.js';
export { oneLine, readStuck, type StuckBatchStatus } from './stuck.js';
export { stateWords } from './state.js';

/** What the pipeline's provider reported of its budgets for the pipeline's model. */
export interface LearnedRateLimits {
  /** The budgets its x-ratelimit-limit-* headers last said; null: it has not said. */
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  limitsSeenAt: Date | null;
  /** Its token count ÷ embedsync's estimate, learned from `answers` answers. */
  tokenRatio: number;
  answers: number;
  /** Of those, 429s; and the times a bucket was lowered to what it said was left. */
  rateLimited: number;
  bucketsLowered: number;
}

export interface PipelineStatus extends PipelineFacts, HoldFacts {
  /** Null until the provider has answered a paced request or reported its limits. */
  learnedRateLimits: LearnedRateLimits | null;
  /** Null when Temporal could not be asked. */
  workflows: PipelineWorkflows | null;
  /** The catalog says a backfill or re-embed runs, and Temporal runs none (src/status/state.ts). */
  walkMissing?: boolean;
  /**
   * Batches stuck at a stage (failed at least embedsync.stuck_after_attempts() times in a row, or
   * for good).
   */
  stuck: StuckBatchStatus[];
  /** The parts of its latest batch-mode backfill, from the database; null if it never had one. */
  batchParts: PartCounts | null;
  /**
   * Rows whose vectors match their content, whoever wrote them (countSyncedRows), of the rows in the
   * source table now.
   */
  synced: { rows: number; of: number | null };
  /**
   * With onContentChange: clear (decision 19): rows search leaves out now, their content changed and
   * their new vectors not yet written (null: every row, after a TRUNCATE). Absent with keep.
   */
  hidden?: number | null;
  /** Deliveries a sink refused for good, kept to be sent again (decision 23). */
  failedDeliveries: FailedDeliveryCount;
  /**
   * Present for a pipeline that embeds nothing (decision 23): the sinks its changes go to. It has no
   * model, vectors, spend or provider.
   */
  eventsOnly?: { sinks: string[] };
  /** Every token paid (the token ledger), priced: today, the last 30 days, in all; by mode. */
  spend: PipelineSpend;
  /** Trigger, or logical with its slot's lag (decision 29). */
  capture: CaptureStatus;
}

export interface StatusReport {
  temporal: { address: string; namespace: string; reachable: boolean; error?: string };
  pipelines: PipelineStatus[];
}

export interface TemporalTarget extends WebUi {
  address: string;
  /** Undefined when connecting failed; `error` says why. */
  client: Client | undefined;
  error?: string;
}

export async function gatherStatus(
  pool: Pool,
  temporal: TemporalTarget,
  pipeline?: string,
): Promise<StatusReport> {
  // What the source tables look like now, not at the pollers' last look; without the rights to act
  // on it, the catalog's last word is shown.
  await checkSourceSchemas(pool, { ...(pipeline ? { pipeline } : {}), wait: false }).catch(
    () => undefined,
  );
  const facts = await readPipelineFacts(pool, pipeline);
  const reasons = await readStateReasons(pool);
  const observed = await readRateObservations(pool);
  const ledger = await readLedger(pool, pipeline);
  const { client } = temporal;
  let error = temporal.error;
  const stuck = await readStuck(pool, temporal, error === undefined ? client : undefined, pipeline);
  const parts = await partCounts(pool);
  const slot = await captureSlotState(pool);
  const slotName = await captureSlotName(pool);
  const pipelines: PipelineStatus[] = [];
  for (const f of facts) {
    let workflows: PipelineWorkflows | null = null;
    if (client && error === undefined) {
      try {
        workflows = await pipelineWorkflows(client, temporal, f.pipeline, f.pendingGeneration);
      } catch (err) {
        // A namespace that is missing or a server that went away: keep the database facts.
        error = (err as Error).message;
      }
    }
    const learned = observed.find((o) => o.provider === f.provider && o.model === f.model);
    const any = await findAnyPipeline(pool, f.pipeline);
    const events =
      any && isEventsPipeline(any)
        ? { eventsOnly: { sinks: any.config.sinks.map(describeSink) } }
        : {};
    const p = any && !isEventsPipeline(any) ? any : undefined;
    const configs = p ? [p.config, ...(p.pendingConfig ? [p.pendingConfig] : [])] : [];
    const synced = p
      ? {
          rows: await countSyncedRows(pool, p),
          // A source table that is gone (a held pipeline) has no rows to count.
          of: await countSourceRows(pool, p).catch(() => null),
        }
      : { rows: 0, of: null };
    const hidden =
      p && clearsOnChange(p.config) ? { hidden: await countStaleKeys(pool, p.name) } : {};
    const spend = priceSpend(
      ledger.filter((l) => l.pipeline === f.pipeline),
      configs,
    );
    pipelines.push({
      ...f,
      synced,
      failedDeliveries: await countFailedDeliveries(pool, f.pipeline),
      ...events,
      ...hidden,
      spend,
      capture: any
        ? captureStatus(any.config, slot, slotName)
        : ({ mode: 'trigger' } satisfies CaptureStatus),
      learnedRateLimits: learned
        ? {
            requestsPerMinute: learned.requestsPerMinute ?? null,
            tokensPerMinute: learned.tokensPerMinute ?? null,
            limitsSeenAt: learned.limitsSeenAt,
            tokenRatio: learned.tokenRatio,
            answers: learned.answers,
            rateLimited: learned.rateLimited,
            bucketsLowered: learned.bucketsLowered,
          }
        : null,
      ...(reasons.get(f.pipeline) ?? { stateReason: null, stateSince: null }),
      workflows,
      ...(walkMissing(f.state, workflows) ? { walkMissing: true } : {}),
      stuck: stuck.get(f.pipeline) ?? [],
      batchParts: parts.get(f.pipeline) ?? null,
    });
  }
  return {
    temporal: {
      address: temporal.address,
      namespace: temporal.namespace,
      reachable: client !== undefined && error === undefined,
      ...(error === undefined ? {} : { error }),
    },
    pipelines,
  };
}
