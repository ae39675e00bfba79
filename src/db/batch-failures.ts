// embedsync.batch_failures and its view embedsync.stuck_batches (sql/000009): every query of that
// table. Activities record each failed attempt of a batch's stage and clear it when the stage
// succeeds or the batch ends; status and verify read the stuck ones (and which keys they hold:
// src/db/staging.ts).
import type { Queryable } from './pool.js';

const MAX_ERROR_LENGTH = 2000;

export interface StageFailure {
  pipeline: string;
  batchId: string;
  stage: string;
  workflowId: string;
  runId: string;
  attempt: number;
  errorClass: string;
  error: string;
  retryable: boolean;
}

/**
 * One failed attempt. A first attempt starts the count afresh (a new run of the stage), except
 * after failures of the same workflow run's stage: a sync's stage that goes on from its local
 * attempts to the task queue (workflows/batch.ts) keeps counting. True when this attempt made the
 * stage stuck (embedsync.stuck_after_attempts() failures in a row).
 */
export async function recordStageFailure(db: Queryable, f: StageFailure): Promise<boolean> {
  // Leftovers of workflows that stopped running are of no use once expired: trimmed as failures
  // arrive.
  await db.query(
    `delete from embedsync.batch_failures
      where last_failed_at < now() - embedsync.batch_failure_expiry()`,
  );
  const { rows } = await db.query<{ stuck: boolean }>(
    `insert into embedsync.batch_failures as f
       (pipeline, batch_id, stage, workflow_id, run_id, attempts, error_class, last_error, retryable)
     select $1, $2, $3, $4, $5, $6, $7, $8, $9 from embedsync.pipelines where name = $1
     on conflict (pipeline, batch_id, stage) do update
       set workflow_id = excluded.workflow_id, run_id = excluded.run_id,
           attempts = case when f.run_id = excluded.run_id and excluded.attempts <= f.attempts
                           then f.attempts + 1 else excluded.attempts end,
           error_class = excluded.error_class,
           last_error = excluded.last_error, retryable = excluded.retryable,
           last_failed_at = now(),
           first_failed_at = case when excluded.attempts <= 1 and f.run_id <> excluded.run_id
                                  then now() else f.first_failed_at end
     returning attempts = embedsync.stuck_after_attempts() as stuck`,
    [
      f.pipeline,
      f.batchId,
      f.stage,
      f.workflowId,
      f.runId,
      f.attempt,
      f.errorClass,
      f.error.slice(0, MAX_ERROR_LENGTH),
      f.retryable,
    ],
  );
  return rows[0]?.stuck ?? false;
}

/**
 * A record left by a run that no longer runs (Temporal says so): it would otherwise wait for
 * expiry.
 */
export async function clearLeftover(
  db: Queryable,
  b: Pick<StuckBatch, 'pipeline' | 'batchId' | 'stage' | 'runId'>,
): Promise<void> {
  await db.query(
    `delete from embedsync.batch_failures
      where pipeline = $1 and batch_id = $2 and stage = $3 and run_id is not distinct from $4`,
    [b.pipeline, b.batchId, b.stage, b.runId],
  );
}

/** The stage succeeded. */
export async function clearStageFailure(
  db: Queryable,
  pipeline: string,
  batchId: string,
  stage: string,
): Promise<void> {
  await db.query(
    'delete from embedsync.batch_failures where pipeline = $1 and batch_id = $2 and stage = $3',
    [pipeline, batchId, stage],
  );
}

/** The batch ended (written, or its generation dropped): none of its stages is failing any more. */
export async function clearBatchFailures(
  db: Queryable,
  pipeline: string,
  batchId: string,
): Promise<void> {
  await db.query('delete from embedsync.batch_failures where pipeline = $1 and batch_id = $2', [
    pipeline,
    batchId,
  ]);
}

/** Every batch whose id starts with `prefix` ended: a sync dead-lettered, a walk finished. */
export async function clearBatchFailuresByPrefix(
  db: Queryable,
  pipeline: string,
  prefix: string,
): Promise<void> {
  await db.query(
    'delete from embedsync.batch_failures where pipeline = $1 and starts_with(batch_id, $2)',
    [pipeline, prefix],
  );
}

/** One row of embedsync.stuck_batches. */
export interface StuckBatch {
  pipeline: string;
  batchId: string;
  workflowId: string;
  stage: string;
  attempts: number;
  errorClass: string;
  lastError: string;
  /** False: Temporal will not try it again; the batch failed for good. */
  retryable: boolean;
  since: Date;
  lastFailedAt: Date;
  runId: string | null;
}

export async function readStuckBatches(db: Queryable, pipeline?: string): Promise<StuckBatch[]> {
  const { rows } = await db.query<StuckBatch>(
    `select pipeline, batch_id as "batchId", workflow_id as "workflowId", stage, attempts,
            error_class as "errorClass", last_error as "lastError", retryable, since,
            last_failed_at as "lastFailedAt", run_id as "runId"
       from embedsync.stuck_batches
      where $1::text is null or pipeline = $1
      order by pipeline, since, batch_id, stage`,
    [pipeline ?? null],
  );
  return rows;
}
