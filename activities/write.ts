// Stage 4: write the batch into the vector table in one transaction, compare-and-set.
//
// Per key: the source row is read again under the key's lock; if its content hash (or the
// pipeline's generation) moved on since fetch, this batch's result for the key is dropped: the
// change that moved it is already in the outbox and a later batch writes it (decideWrite in
// src/batch/decide.ts). Writers of the same key serialise on an advisory lock, so a stale batch can
// never overwrite a newer one. A vector table's write never locks the source table; a column
// pipeline's locks the rows it writes, skipping those a user's transaction holds (decision 18).
import { decideWrite } from '../src/batch/decide.js';
import { clearBatchFailures } from '../src/db/batch-failures.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { clearDeadLetters } from '../src/db/dead-letters.js';
import { lockKeys, lockPipeline } from '../src/db/key-locks.js';
import { withTransaction, type PoolClient } from '../src/db/pool.js';
import { readRowsForWrite, writeColumnRows, writeTarget } from '../src/db/destination.js';
import {
  clearBatch,
  clearStagedKeys,
  readRowsToWrite,
  writeStagedChunks,
} from '../src/db/staging.js';
import { deleteVectors, sweepDeleted, updateMetadata } from '../src/db/vectors.js';
import { configuredSinks } from '../src/sinks/deliver.js';
import type { ActivityDeps } from './deps.js';
import { writeAroundBusyRows } from './busy-rows.js';
import { columnRows } from './column-rows.js';
import { classified } from './errors.js';
import type { WriteOutcome } from '../src/metrics/worker.js';
import { followingSchemaChanges } from './schema.js';
import { staleKeysSettler } from './stale-keys.js';
import type { WriteInput, WriteResult } from './types.js';

export function createWriteBatch(deps: ActivityDeps) {
  const { pool, log, metrics } = deps;
  return async function writeBatch(input: WriteInput): Promise<WriteResult> {
    const { pipeline, batchId, sweep, generation, enqueuedAt } = input;
    const result: WriteResult = { written: 0, metadataUpdated: 0, deleted: 0, stale: 0, swept: 0 };
    let chunks = 0;
    let latency: { seconds(): number } | undefined;
    // One transaction, or for a column pipeline one per try until no row it needs is busy.
    const writeOnce = (): Promise<number> =>
      withTransaction(pool, async (client) => {
        // Shared with other writers of the pipeline; a swap takes it for update to switch
        // generations.
        const locked = await getPipeline(client, pipeline, 'for share');
        // How many sinks the sync tells once this write has committed (decision 23).
        const sinks = configuredSinks(locked).length;
        if (sinks > 0) result.sinks = sinks;
        const p = atGeneration(locked, generation);
        const staged = await readRowsToWrite(client, batchId);
        if (!p) {
          // The generation this batch was for has been swapped out (or abandoned): nothing to
          // write.
          await clearStaging(client, pipeline, batchId);
          result.stale += staged.length;
          return 0;
        }
        const keys = staged.map((r) => r.pk);
        await lockPipeline(client, p.name, sweep ? 'exclusive' : 'shared');
        await lockKeys(client, p.name, keys);
        const settler = await staleKeysSettler(client, locked, p);
        // Read again under the key locks: the compare-and-set compares with what is there now.
        const { current, busy } = await readRowsForWrite(client, p, keys);
        const ready = staged.filter((r) => !busy.has(r.pk));
        const plan = decideWrite(ready, current, p.generation);
        result.stale += plan.stale;

        if (plan.deleteVectors.length > 0) {
          await deleteVectors(client, p, plan.deleteVectors);
          result.deleted += plan.remove.length;
        }
        if (plan.replace.length > 0) {
          const target = writeTarget(p);
          chunks += target
            ? await writeColumnRows(
                client,
                p,
                target,
                p.generation,
                columnRows(p, plan.replace, current),
                { stagedBatch: batchId },
              )
            : await writeStagedChunks(client, p, batchId, p.generation, plan.replace);
          result.written += plan.replace.length;
        }
        await clearDeadLetters(client, p.name, plan.clearLetters);
        if (plan.keep.length > 0)
          result.metadataUpdated += await updateMetadata(client, p, plan.keep);
        await settler.settle(
          ready.map((r) => r.pk),
          current,
        );
        if (busy.size > 0) {
          // Written now: a later try handles only the rows that were busy.
          await clearStagedKeys(
            client,
            batchId,
            ready.map((r) => r.pk),
          );
          return busy.size;
        }
        if (sweep) {
          result.swept = await sweepDeleted(client, p);
          await settler.sweep();
        }
        await clearStaging(client, pipeline, batchId);
        log.info({ pipeline, batch: batchId, ...result }, 'batch written');
        latency = enqueuedAt === undefined ? undefined : await latencyClock(client, enqueuedAt);
        return 0;
      });
    await classified(() =>
      followingSchemaChanges(deps, pipeline, () => writeAroundBusyRows(pipeline, writeOnce)),
    );
    if (metrics) {
      for (const [field, outcome] of Object.entries(WRITE_OUTCOMES) as [
        WriteCount,
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

type WriteCount = Exclude<keyof WriteResult, 'sinks'>;

const WRITE_OUTCOMES: Record<WriteCount, WriteOutcome> = {
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
  await clearBatch(client, batchId);
  await clearBatchFailures(client, pipeline, batchId);
}
