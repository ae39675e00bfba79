// Stage 4: write the batch into the vector table in one transaction, compare-and-set.
//
// Per key: the source row is read again under the key's lock; if its content hash (or the
// pipeline's generation) moved on since fetch, this batch's result for the key is dropped: the
// change that moved it is already in the outbox and a later batch writes it. Writers of the same
// key serialise on an advisory lock, so a stale batch can never overwrite a newer one. The source
// table is never locked.
import { clearBatchFailures } from '../src/db/batch-failures.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { clearDeadLetters } from '../src/db/dead-letters.js';
import { qualified } from '../src/db/ident.js';
import { withTransaction, type PoolClient } from '../src/db/pool.js';
import { keyMatches, readSourceRows } from '../src/db/source.js';
import type { Pipeline } from '../src/db/catalog.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';
import type { WriteOutcome } from '../src/metrics/worker.js';
import { followingSchemaChanges } from './schema.js';
import type { WriteInput, WriteResult } from './types.js';

interface StagedRow {
  pk: string;
  action: 'embed' | 'keep' | 'delete';
  content_hash: string | null;
  generation: number;
}

export function createWriteBatch(deps: ActivityDeps) {
  const { pool, log, metrics } = deps;
  return async function writeBatch(input: WriteInput): Promise<WriteResult> {
    const { pipeline, batchId, sweep, generation, enqueuedAt } = input;
    const { result, chunks, latency } = await classified(() =>
      followingSchemaChanges(deps, pipeline, () =>
        withTransaction(pool, async (client) => {
          const result: WriteResult = {
            written: 0,
            metadataUpdated: 0,
            deleted: 0,
            stale: 0,
            swept: 0,
          };
          let chunks = 0;
          // Shared with other writers of the pipeline; a swap takes it for update to switch
          // generations.
          const p = atGeneration(await getPipeline(client, pipeline, 'for share'), generation);
          const { rows: staged } = await client.query<StagedRow>(
            'select pk, action, content_hash, generation from embedsync.staged_rows where batch_id = $1',
            [batchId],
          );
          if (!p) {
            // The generation this batch was for has been swapped out (or abandoned): nothing to
            // write.
            await clearStaging(client, pipeline, batchId);
            return { result: { ...result, stale: staged.length }, chunks, latency: undefined };
          }
          await lockPipeline(client, p.name, sweep ? 'exclusive' : 'shared');
          await lockKeys(
            client,
            p.name,
            staged.map((r) => r.pk),
          );

          const fresh = new Map(
            (
              await readSourceRows(
                client,
                p,
                staged.map((r) => r.pk),
              )
            ).map((r) => [r.pk, r]),
          );
          const replace: string[] = [];
          const keep: string[] = [];
          const remove: string[] = [];
          for (const row of staged) {
            const now = fresh.get(row.pk);
            const current =
              row.generation === p.generation &&
              (row.action === 'delete'
                ? now === undefined
                : now !== undefined && now.contentHash === row.content_hash);
            if (!current) result.stale += 1;
            else if (row.action === 'embed') replace.push(row.pk);
            else if (row.action === 'keep') keep.push(row.pk);
            else remove.push(row.pk);
          }

          const table = qualified(p.vectorSchema, p.vectorTable);
          const metadata = (keys: string[]) => keys.map((k) => fresh.get(k)?.metadata ?? '{}');
          if (replace.length > 0 || remove.length > 0) {
            await client.query(`delete from ${table} where pk = any($1::text[])`, [
              [...replace, ...remove],
            ]);
            result.deleted = remove.length;
          }
          if (replace.length > 0) {
            const inserted = await client.query(
              `insert into ${table} (pk, chunk_index, embedding, chunk, metadata, content_hash, generation)
             select c.pk, c.chunk_index, c.embedding, c.chunk, s.metadata, s.hash, $2
               from embedsync.staged_chunks c
               join unnest($3::text[], $4::jsonb[], $5::text[]) as s(pk, metadata, hash) on s.pk = c.pk
              where c.batch_id = $1`,
              [
                batchId,
                p.generation,
                replace,
                metadata(replace),
                replace.map((k) => fresh.get(k)?.contentHash),
              ],
            );
            result.written = replace.length;
            chunks = inserted.rowCount ?? 0;
          }
          // Keys now in step are no longer dead letters: embedded, or gone, or found unchanged after
          // a whole-batch failure. A row refused in this very batch is 'keep' and keeps its letter.
          await clearDeadLetters(client, p.name, {
            allOf: [...replace, ...remove],
            batchFailuresOf: keep,
          });
          if (keep.length > 0) {
            const updated = await client.query(
              `update ${table} v set metadata = s.metadata
               from unnest($1::text[], $2::jsonb[]) as s(pk, metadata)
              where v.pk = s.pk and v.metadata is distinct from s.metadata`,
              [keep, metadata(keep)],
            );
            result.metadataUpdated = updated.rowCount ?? 0;
          }
          if (sweep) result.swept = await sweepDeleted(client, p);
          await clearStaging(client, pipeline, batchId);
          log.info({ pipeline, batch: batchId, ...result }, 'batch written');
          const latency =
            enqueuedAt === undefined ? undefined : await latencyClock(client, enqueuedAt);
          return { result, chunks, latency };
        }),
      ),
    );
    if (metrics) {
      for (const [field, outcome] of Object.entries(WRITE_OUTCOMES) as [
        keyof WriteResult,
        WriteOutcome,
      ][]) {
        if (result[field] > 0) metrics.rowsWritten.inc({ pipeline, outcome }, result[field]);
      }
      if (chunks > 0) metrics.chunksWritten.inc({ pipeline }, chunks);
      if (latency) metrics.syncLatency.observe({ pipeline }, latency.seconds());
    }
    return result;
  };
}

const WRITE_OUTCOMES: Record<keyof WriteResult, WriteOutcome> = {
  written: 'written',
  metadataUpdated: 'metadata_updated',
  deleted: 'deleted',
  stale: 'stale',
  swept: 'swept',
};

/**
 * Seconds from `enqueuedAt` to the commit: the age on the database's clock (which stamped
 * enqueued_at) just before commit, plus this process's time from then, so that no two clocks are
 * compared.
 */
async function latencyClock(
  client: PoolClient,
  enqueuedAt: string,
): Promise<{ seconds(): number }> {
  const { rows } = await client.query<{ age: number }>(
    'select extract(epoch from clock_timestamp() - $1::timestamptz)::float8 as age',
    [enqueuedAt],
  );
  const age = rows[0]?.age ?? 0;
  const then = performance.now();
  return { seconds: () => Math.max(0, age + (performance.now() - then) / 1000) };
}

/** The batch has ended: its staged data and the record of its failed stages go, with its write. */
async function clearStaging(client: PoolClient, pipeline: string, batchId: string): Promise<void> {
  await client.query('delete from embedsync.staged_chunks where batch_id = $1', [batchId]);
  await client.query('delete from embedsync.staged_rows where batch_id = $1', [batchId]);
  await clearBatchFailures(client, pipeline, batchId);
}

async function lockPipeline(
  client: PoolClient,
  pipeline: string,
  mode: 'shared' | 'exclusive',
): Promise<void> {
  const fn = mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock';
  await client.query(`select ${fn}(hashtextextended('embedsync:' || $1, 0))`, [pipeline]);
}

/** Key locks are taken in one order (by hash) so that two batches sharing keys cannot deadlock. */
async function lockKeys(client: PoolClient, pipeline: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await client.query(
    `select pg_advisory_xact_lock(hashtext('embedsync:' || $1), h)
       from (select distinct hashtext(k) as h from unnest($2::text[]) as k order by 1) as ordered`,
    [pipeline, keys],
  );
}

/**
 * After a TRUNCATE: vectors whose source row no longer exists. Runs under the exclusive pipeline
 * lock.
 */
async function sweepDeleted(client: PoolClient, p: Pipeline): Promise<number> {
  const { rowCount } = await client.query(
    `delete from ${qualified(p.vectorSchema, p.vectorTable)} v
      where not exists (select 1 from ${qualified(p.sourceSchema, p.sourceTable)} s where ${keyMatches(p, 's', 'v.pk')})`,
  );
  return rowCount ?? 0;
}
