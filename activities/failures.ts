// Every failed attempt of an activity is recorded in embedsync.batch_failures, where status, verify
// and SQL see a stage that keeps failing; a later success of the stage clears it. Best effort: a
// database that cannot take the record (it may be the very failure) is logged, and the attempt's
// error goes on.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { clearStageFailure, recordStageFailure } from '../src/db/batch-failures.js';
import type { ActivityDeps } from './deps.js';
import { callingWorkflow } from './workflow.js';

/** The stage each activity is, in the words status uses. */
const STAGES: Record<string, string> = {
  fetchBatch: 'fetch',
  chunkBatch: 'chunk',
  embedBatch: 'embed',
  writeBatch: 'write',
  walkBatch: 'walk batch',
  buildVectorIndex: 'index',
  countSourceRows: 'count',
  startBackfill: 'start',
  scanKeys: 'scan',
  checkpointBackfill: 'checkpoint',
  finishBackfill: 'finish',
  prepareReembed: 'prepare re-embed',
  swapInGeneration: 'swap',
  abandonReembed: 'abandon re-embed',
  finishReembed: 'finish',
  // The same steps under the names re-embeds started before scheduled them by.
  prepareSwap: 'prepare re-embed',
  cutOverSwap: 'swap',
  abandonSwap: 'abandon re-embed',
  deadLetterBatch: 'dead-letter',
  deliverChanges: 'deliver',
};

/**
 * The class of a failure: an ApplicationFailure's type, else the error's class (pg's are all named
 * 'error').
 */
export function errorClass(err: unknown): string {
  if (err instanceof ApplicationFailure) return err.type ?? 'ApplicationFailure';
  if (!(err instanceof Error)) return typeof err;
  const name =
    err.name && err.name !== 'Error' && err.name !== 'error' ? err.name : err.constructor.name;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? `${name} ${code}` : name;
}

interface ActivityInput {
  pipeline?: unknown;
  batchId?: unknown;
}

type Activity = (input: never) => Promise<unknown>;

/** The same activities, each recording its failed attempts and clearing them on a later success. */
export function recordingFailures<T extends Record<string, Activity>>(
  { pool, log }: ActivityDeps,
  activities: T,
): T {
  const wrapped: Record<string, Activity> = {};
  for (const [name, activity] of Object.entries(activities)) {
    wrapped[name] = async (input: never) => {
      const ref = input as ActivityInput | undefined;
      const pipeline = typeof ref?.pipeline === 'string' ? ref.pipeline : undefined;
      try {
        const result = await activity(input);
        const { info } = Context.current();
        // Only a retried stage can have a record; the write clears its whole batch in its own
        // transaction.
        if (pipeline && info.attempt > 1) {
          const batchId =
            typeof ref?.batchId === 'string' ? ref.batchId : callingWorkflow().workflowId;
          await clearStageFailure(pool, pipeline, batchId, STAGES[name] ?? name).catch(
            (err: unknown) =>
              log.warn(
                { err, pipeline, batch: batchId },
                'could not clear the record of a stage that failed before',
              ),
          );
        }
        return result;
      } catch (err) {
        if (pipeline) await record(pool, log, pipeline, ref?.batchId, STAGES[name] ?? name, err);
        throw err;
      }
    };
  }
  return wrapped as T;
}

async function record(
  pool: ActivityDeps['pool'],
  log: ActivityDeps['log'],
  pipeline: string,
  batchRef: unknown,
  stage: string,
  err: unknown,
): Promise<void> {
  const { info, cancellationSignal } = Context.current();
  // A cancelled attempt did not fail: its workflow is going away or moving on. A rate-limited one
  // is pacing, not failing (a provider that keeps throttling shows in the provider's health
  // instead).
  if (
    cancellationSignal.aborted ||
    (err instanceof ApplicationFailure && err.nextRetryDelay != null)
  )
    return;
  const { workflowId, runId } = callingWorkflow();
  const batchId = typeof batchRef === 'string' ? batchRef : workflowId;
  const failure = {
    pipeline,
    batchId,
    stage,
    workflowId,
    runId,
    attempt: info.attempt,
    errorClass: errorClass(err),
    error: err instanceof Error ? err.message : String(err),
    retryable: !(err instanceof ApplicationFailure && err.nonRetryable),
  };
  try {
    // Bounded: a database that hangs must not hold the attempt past its heartbeat timeout.
    const stuck = await Promise.race([
      recordStageFailure(pool, failure),
      timeout(RECORD_WITHIN_MS),
    ]);
    if (stuck)
      log.error(
        { pipeline, batch: batchId, stage, workflowId, attempts: info.attempt, err },
        `batch stuck at ${stage}`,
      );
  } catch (recordErr) {
    log.warn(
      { err: recordErr, pipeline, batch: batchId, stage },
      'could not record a failed attempt of a stage',
    );
  }
}

const RECORD_WITHIN_MS = 5000;

function timeout(ms: number): Promise<never> {
  return new Promise((_, reject) => {
    setTimeout(() => reject(new Error(`no answer from the database within ${ms} ms`)), ms).unref();
  });
}
