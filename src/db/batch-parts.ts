// embedsync.batch_parts (sql/000015): every query of that table. A batch-mode backfill records a
// part (its keys and their content hashes) before creating the provider's batch, then the batch's
// id, its status as polled, and what writing its output found (docs/architecture.md, decision 17).
import type { Queryable } from './pool.js';

export type PartStatus = 'recorded' | 'submitted' | 'written' | 'failed' | 'cancelled';

export interface BatchPart {
  backfill: string;
  part: number;
  pipeline: string;
  generation: number;
  keys: string[];
  contentHashes: string[];
  cursor: string | null;
  scanned: number;
  inputs: number;
  tokens: number;
  attempt: number;
  status: PartStatus;
  providerBatchId: string | null;
  providerStatus: string | null;
  completedLines: number;
  failedLines: number;
  written: number;
  stale: number;
  deadLettered: number;
  paidTokens: number;
  /** Unix seconds, on the database's clock. */
  recordedAt: number;
}

export type NewPart = Pick<
  BatchPart,
  | 'backfill'
  | 'part'
  | 'pipeline'
  | 'generation'
  | 'keys'
  | 'contentHashes'
  | 'cursor'
  | 'scanned'
  | 'inputs'
  | 'tokens'
>;

const COLUMNS = `backfill, part, pipeline, generation, keys, content_hashes as "contentHashes", cursor,
  scanned, inputs, tokens::float8 as tokens, attempt, status, provider_batch_id as "providerBatchId",
  provider_status as "providerStatus", completed_lines as "completedLines",
  failed_lines as "failedLines", written, stale, dead_lettered as "deadLettered",
  paid_tokens::float8 as "paidTokens", extract(epoch from recorded_at)::float8 as "recordedAt"`;

export async function readPart(
  db: Queryable,
  backfill: string,
  part: number,
): Promise<BatchPart | undefined> {
  const { rows } = await db.query<BatchPart>(
    `select ${COLUMNS} from embedsync.batch_parts where backfill = $1 and part = $2`,
    [backfill, part],
  );
  return rows[0];
}

/**
 * Records what a part is about to send, replacing an earlier record of it that no provider batch
 * was made for (the caller has made sure none was).
 */
export async function recordPart(db: Queryable, p: NewPart): Promise<void> {
  await db.query(
    `insert into embedsync.batch_parts
       (backfill, part, pipeline, generation, keys, content_hashes, cursor, scanned, inputs, tokens)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     on conflict (backfill, part) do update
       set keys = excluded.keys, content_hashes = excluded.content_hashes,
           cursor = excluded.cursor, scanned = excluded.scanned, inputs = excluded.inputs,
           tokens = excluded.tokens, generation = excluded.generation, updated_at = now()`,
    [
      p.backfill,
      p.part,
      p.pipeline,
      p.generation,
      p.keys,
      p.contentHashes,
      p.cursor,
      p.scanned,
      p.inputs,
      p.tokens,
    ],
  );
}

/** The provider created the part's batch. */
export async function markSubmitted(
  db: Queryable,
  backfill: string,
  part: number,
  providerBatchId: string,
  providerStatus: string,
): Promise<void> {
  await db.query(
    `update embedsync.batch_parts
        set status = 'submitted', provider_batch_id = $3, provider_status = $4, updated_at = now()
      where backfill = $1 and part = $2`,
    [backfill, part, providerBatchId, providerStatus],
  );
}

/** The part is to be submitted again (the provider refused it for its enqueued-token limit). */
export async function nextAttempt(db: Queryable, backfill: string, part: number): Promise<void> {
  await db.query(
    `update embedsync.batch_parts
        set status = 'recorded', provider_batch_id = null, attempt = attempt + 1, updated_at = now()
      where backfill = $1 and part = $2 and status = 'submitted'`,
    [backfill, part],
  );
}

/** The batch's status and line counts, as last polled. */
export async function recordPoll(
  db: Queryable,
  backfill: string,
  part: number,
  poll: { providerStatus: string; completed: number; failed: number },
): Promise<void> {
  await db.query(
    `update embedsync.batch_parts
        set provider_status = $3, completed_lines = $4, failed_lines = $5, updated_at = now()
      where backfill = $1 and part = $2`,
    [backfill, part, poll.providerStatus, poll.completed, poll.failed],
  );
}

export interface PartWritten {
  written: number;
  stale: number;
  deadLettered: number;
  paidTokens: number;
}

/**
 * The part's vectors are written: returns false if it already was (a retried write), so what it
 * paid is counted once.
 */
export async function markWritten(
  db: Queryable,
  backfill: string,
  part: number,
  w: PartWritten,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update embedsync.batch_parts
        set status = 'written', written = $3, stale = $4, dead_lettered = $5, paid_tokens = $6,
            updated_at = now()
      where backfill = $1 and part = $2 and status <> 'written'`,
    [backfill, part, w.written, w.stale, w.deadLettered, w.paidTokens],
  );
  return (rowCount ?? 0) > 0;
}

/** The part is over without its vectors: failed at the provider, or cancelled with its backfill. */
export async function markEnded(
  db: Queryable,
  backfill: string,
  part: number,
  status: 'failed' | 'cancelled',
  error: string | null,
): Promise<void> {
  await db.query(
    `update embedsync.batch_parts set status = $3, error = $4, updated_at = now()
      where backfill = $1 and part = $2 and status in ('recorded', 'submitted')`,
    [backfill, part, status, error],
  );
}

/** The parts of a backfill not yet over, with what the provider is running for them. */
export async function unfinishedParts(db: Queryable, backfill: string): Promise<BatchPart[]> {
  const { rows } = await db.query<BatchPart>(
    `select ${COLUMNS} from embedsync.batch_parts
      where backfill = $1 and status in ('recorded', 'submitted') order by part`,
    [backfill],
  );
  return rows;
}

/**
 * A new batch backfill of the pipeline: the parts of its earlier ones are history once over (a
 * re-embed's and a backfill's may run side by side), or a week old (a run terminated outright).
 */
export async function clearEarlierParts(
  db: Queryable,
  pipeline: string,
  backfill: string,
): Promise<void> {
  await db.query(
    `delete from embedsync.batch_parts
      where pipeline = $1 and backfill <> $2
        and (status in ('written', 'failed', 'cancelled') or recorded_at < now() - interval '7 days')`,
    [pipeline, backfill],
  );
}

export interface PartCounts {
  backfill: string;
  /** Parts sent to the provider (any status but recorded). */
  submitted: number;
  /** Of those, running at the provider now. */
  inProgress: number;
  /** Written into the vector table. */
  completed: number;
  failed: number;
  cancelled: number;
  /** Request lines the provider has answered so far, across the parts. */
  completedLines: number;
  failedLines: number;
  paidTokens: number;
}

/** The latest batch backfill's parts of each pipeline, counted, for status. */
export async function partCounts(db: Queryable): Promise<Map<string, PartCounts>> {
  const { rows } = await db.query<PartCounts & { pipeline: string }>(
    `select distinct on (pipeline) pipeline, backfill, submitted, "inProgress", completed, failed,
            cancelled, "completedLines", "failedLines", "paidTokens"
       from (select pipeline, backfill, max(recorded_at) as latest,
                    count(*) filter (where status <> 'recorded')::int as submitted,
                    count(*) filter (where status = 'submitted')::int as "inProgress",
                    count(*) filter (where status = 'written')::int as completed,
                    count(*) filter (where status = 'failed')::int as failed,
                    count(*) filter (where status = 'cancelled')::int as cancelled,
                    sum(completed_lines)::int as "completedLines",
                    sum(failed_lines)::int as "failedLines",
                    sum(paid_tokens)::float8 as "paidTokens"
               from embedsync.batch_parts group by pipeline, backfill) b
      order by pipeline, latest desc`,
  );
  return new Map(rows.map(({ pipeline, ...c }) => [pipeline, c]));
}
