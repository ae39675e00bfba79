// A table walk's batch in one activity (docs/architecture.md, decision 14): read the rows, chunk
// them, embed them and write each provider response's vectors straight into the vector table, with
// no staging round trip. Each write is compare-and-set under the key locks like the batch stage's
// (src/batch/decide.ts), so a row that moved on meanwhile is left to its sync. A retry, or the next
// paced call, reads the rows again and finds those already written unchanged: nothing is paid for
// twice. Only a row whose chunks span several requests has its first vectors staged until the rest
// arrive. Runs on the provider's task queue, so the queue's pacing and the shared token buckets
// hold for it as for any embed. A batch-mode backfill writes its parts with the same writeRows
// (activities/batch-write.ts).
import { Context } from '@temporalio/activity';
import { toSql } from 'pgvector';
import { decideFetch, decideWrite, type StagedRow } from '../src/batch/decide.js';
import { chunkDocument } from '../src/chunking/document.js';
import { countCharacters, countTokens, estimateTokens } from '../src/chunking/tokens.js';
import { atGeneration, getPipeline, type Pipeline } from '../src/db/catalog.js';
import { clearDeadLetters, recordRefusedContent, refusedContent } from '../src/db/dead-letters.js';
import { lockKeys, lockPipeline } from '../src/db/key-locks.js';
import { withTransaction } from '../src/db/pool.js';
import { readRowsForWrite, writeColumnRows, writeTarget } from '../src/db/destination.js';
import { readSourceRows } from '../src/db/source.js';
import { clearStagedVectors, readStagedVectors, stageVectors } from '../src/db/staging.js';
import {
  deleteVectors,
  insertChunks,
  readEmbeddedHeads,
  updateMetadata,
  type ChunkColumns,
} from '../src/db/vectors.js';
import { InputIsolator } from '../src/providers/isolate.js';
import { nextRequest } from '../src/providers/requests.js';
import type { ActivityDeps } from './deps.js';
import { embedOnce } from './embed-once.js';
import { writeAroundBusyRows } from './busy-rows.js';
import { columnRows, tooLongRows } from './column-rows.js';
import { classified } from './errors.js';
import { providerCall } from './provider-call.js';
import { followingSchemaChanges } from './schema.js';
import type { BatchRef, EmbedResult, WriteResult } from './types.js';

export interface WalkBatchInput extends BatchRef {
  keys: string[];
  /**
   * Under a requests-per-minute limit, send one task-queue slot's worth of requests and say how many
   * rows remain; the walk calls again until none do.
   */
  paced?: boolean;
}

export interface WalkBatchResult extends WriteResult, EmbedResult {
  /** Rows still to embed after a paced call. */
  remaining: number;
  /** Rows the provider refused, set aside in embedsync.dead_letters. */
  deadLettered: number;
}

/** One chunk of a row to embed; `vector` once it has one. */
export interface Piece {
  pk: string;
  index: number;
  chunk: string;
  id: string;
  size: number;
  tokens: number;
  vector?: number[];
  /** Its vector is in embedsync.staged_chunks. */
  staged?: boolean;
}

interface RowToWrite {
  row: StagedRow;
  pieces: Piece[];
  /** Some of its vectors are staged (by this attempt or an earlier one). */
  staged: boolean;
}

/** A write's counters, all zero. */
export const emptyResult = (): WalkBatchResult => ({
  written: 0,
  metadataUpdated: 0,
  deleted: 0,
  stale: 0,
  swept: 0,
  embedded: 0,
  tokens: 0,
  requests: 0,
  remaining: 0,
  deadLettered: 0,
});

export function createWalkBatch(deps: ActivityDeps) {
  const { pool, log, metrics } = deps;
  return async function walkBatch(input: WalkBatchInput): Promise<WalkBatchResult> {
    const { pipeline, batchId, keys, generation } = input;
    const result = emptyResult();
    await classified(() =>
      followingSchemaChanges(deps, pipeline, async () => {
        const ctx = Context.current();
        const live = await getPipeline(pool, pipeline);
        const p = atGeneration(live, generation);
        if (!p) return; // that generation is gone: nothing to write for it
        const rows = await readSourceRows(pool, p, keys);
        const heads = await readEmbeddedHeads(
          pool,
          p,
          rows.map((r) => r.pk),
        );
        const decided = decideFetch(keys, rows, heads, p.generation);
        const changed = decided.filter((r) => r.action === 'embed');
        const refused =
          changed.length === 0
            ? new Set<string>()
            : await refusedContent(
                pool,
                p.name,
                p.generation,
                changed.map((r) => r.pk),
              );
        // A column pipeline's text longer than the model takes is refused here, before paying.
        const tooLong = tooLongRows(
          p,
          changed.filter((r) => !refused.has(`${r.pk}\u0000${r.contentHash ?? ''}`)),
        );
        if (tooLong.length > 0) {
          await recordRefusedContent(pool, p.name, p.generation, tooLong);
          for (const l of tooLong) refused.add(`${l.pk}\u0000${l.contentHash}`);
          result.deadLettered += tooLong.length;
        }
        const isRefused = (r: StagedRow) => refused.has(`${r.pk}\u0000${r.contentHash ?? ''}`);
        // A row refused with this very content keeps its vectors, like an unchanged one.
        const settled = decided
          .filter((r) => r.action !== 'embed' || isRefused(r))
          .map((r) => ({ row: isRefused(r) ? { ...r, action: 'keep' as const } : r }));
        const write = (batch: readonly { row: StagedRow; pieces?: Piece[]; staged?: boolean }[]) =>
          writeRows(deps, p, batchId, batch, result);
        if (settled.length > 0) await write(settled);

        // A walk of a generation other than the live one builds a re-embed's.
        const mode = p.generation === live.generation ? 'backfill' : 'reembed';
        const call = providerCall(deps, p, mode, () => ctx.heartbeat(result));
        const sendOnce = embedOnce(deps, p, mode, call, () => ctx.heartbeat(result));
        const toEmbed = changed.filter((r) => !isRefused(r));
        const earlier =
          toEmbed.length > 0
            ? await readStagedVectors(pool, batchId)
            : new Map<string, { chunk: string; vector: string }>();
        const byRow = new Map<string, RowToWrite>();
        for (const row of toEmbed) {
          const texts = chunkDocument(p.config, row.document ?? '', row.context ?? '');
          const pieces = texts.map((chunk, index): Piece => {
            const id = `${row.pk}\u0000${index}`;
            const size = call.facts.unit === 'tokens' ? countTokens(chunk) : countCharacters(chunk);
            const tokens =
              call.facts.unit === 'tokens' ? size : estimateTokens(p.config.embedding, chunk);
            const before = earlier.get(id);
            // pgvector's text form is a JSON array.
            const vector =
              before?.chunk === chunk ? (JSON.parse(before.vector) as number[]) : undefined;
            const known = vector ? { vector, staged: true } : {};
            return { pk: row.pk, index, chunk, id, size, tokens, ...known };
          });
          byRow.set(row.pk, { row, pieces, staged: pieces.some((x) => x.vector) });
        }
        const complete = (r: RowToWrite) => r.pieces.every((x) => x.vector !== undefined);
        // Rows an earlier attempt embedded in full but could not write: written now, unpaid.
        const ready = [...byRow.values()].filter(complete);
        if (ready.length > 0) await write(ready);

        const stage = async (rowsToStage: RowToWrite[]): Promise<void> => {
          const mine = rowsToStage.flatMap((r) => r.pieces.filter((x) => x.vector && !x.staged));
          if (mine.length === 0) return;
          await stageVectors(pool, batchId, {
            pk: mine.map((x) => x.pk),
            index: mine.map((x) => x.index),
            chunk: mine.map((x) => x.chunk),
            vector: mine.map((x) => toSql(x.vector ?? []) as string),
          });
          for (const x of mine) x.staged = true;
          for (const r of rowsToStage) r.staged ||= r.pieces.some((x) => x.staged);
        };
        const send = async (inputs: Piece[]): Promise<void> => {
          result.requests += 1;
          const { vectors, tokens } = await sendOnce(inputs);
          inputs.forEach((x, i) => (x.vector = vectors[i]));
          result.embedded += inputs.length;
          result.tokens += tokens;
          const touched = [...new Set(inputs.map((x) => x.pk))].flatMap((pk) => {
            const r = byRow.get(pk);
            return r ? [r] : [];
          });
          // Kept until the row's other chunks arrive, so a retry never pays for these again.
          await stage(touched.filter((r) => !complete(r)));
          const done = touched.filter(complete);
          try {
            if (done.length > 0) await write(done);
          } catch (err) {
            // Paid for but not written: staged, if the database lets us, for the retry to write.
            await stage(done).catch(() => undefined);
            throw err;
          }
          ctx.heartbeat(result);
        };
        let queue = [...byRow.values()].flatMap((r) => r.pieces.filter((x) => !x.vector));
        const alreadyEmbedded = [...byRow.values()].reduce(
          (n, r) => n + r.pieces.filter((x) => x.vector).length,
          0,
        );
        const isolator = new InputIsolator(send, alreadyEmbedded, () => queue);
        const setAside = async (): Promise<void> => {
          const failures = isolator.takeFailures();
          if (failures.size === 0) return;
          const letters = [...failures].map(([pk, error]) => ({
            pk,
            contentHash: byRow.get(pk)?.row.contentHash ?? '',
            error,
          }));
          await recordRefusedContent(pool, p.name, p.generation, letters);
          // Its old vectors stay (its metadata is brought up to date), and so does its letter.
          await write(
            letters.flatMap(({ pk }) => {
              const r = byRow.get(pk);
              return r ? [{ row: { ...r.row, action: 'keep' as const }, staged: r.staged }] : [];
            }),
          );
          result.deadLettered += failures.size;
          log.warn(
            { pipeline, batch: batchId, keys: [...failures.keys()] },
            'rows the provider refused were set aside in embedsync.dead_letters',
          );
        };
        // Paced only where the queue's rate is limited: otherwise one call sends everything.
        const slot = call.plan?.activitiesPerSecond === undefined ? undefined : call.plan;
        const maxRequests = input.paced && slot ? slot.requestsPerActivity : Infinity;
        let sent = 0;
        while (queue.length > 0 && sent < maxRequests) {
          await isolator.run(nextRequest(queue, call.limits));
          sent += 1;
          queue = queue.filter((x) => !isolator.settled(x));
          // A refusal counts as the input's fault only once the provider has accepted something.
          if (isolator.anyAccepted) await setAside();
        }
        await setAside();
        result.remaining = new Set(queue.map((x) => x.pk)).size;
      }),
    );
    if (metrics) {
      const counts: [number, 'written' | 'metadata_updated' | 'deleted' | 'stale'][] = [
        [result.written, 'written'],
        [result.metadataUpdated, 'metadata_updated'],
        [result.deleted, 'deleted'],
        [result.stale, 'stale'],
      ];
      for (const [n, outcome] of counts)
        if (n > 0) metrics.rowsWritten.inc({ pipeline, outcome }, n);
    }
    log.debug({ pipeline, batch: batchId, ...result }, 'walk batch done');
    return result;
  };
}

/**
 * Writes rows into the vector table in one transaction, compare-and-set: under the pipeline's shared
 * lock and the keys' locks, each row is written only if its source row still has the content it was
 * read with (decideWrite); a changed or gone row is left to the sync its change queued. A column
 * pipeline's rows go into their source rows, skipping those a user's transaction holds, which are
 * tried again shortly (activities/busy-rows.ts).
 */
export async function writeRows(
  { pool, metrics }: ActivityDeps,
  read: Pipeline,
  batchId: string,
  rows: readonly { row: StagedRow; pieces?: Piece[]; staged?: boolean }[],
  result: WalkBatchResult,
): Promise<void> {
  let left = rows;
  const writeOnce = (): Promise<number> =>
    withTransaction(pool, async (client) => {
      const keys = left.map((r) => r.row.pk);
      // The generation the rows were read for, if it is still live (or still being built).
      const p = atGeneration(await getPipeline(client, read.name, 'for share'), read.generation);
      if (!p) {
        result.stale += left.length;
        return 0;
      }
      await lockPipeline(client, p.name, 'shared');
      await lockKeys(client, p.name, keys);
      const { current, busy } = await readRowsForWrite(client, p, keys);
      const ready = left.filter(({ row }) => !busy.has(row.pk));
      const staged = ready.map(({ row }) => ({
        pk: row.pk,
        action: row.action,
        contentHash: row.contentHash,
        generation: p.generation,
      }));
      const plan = decideWrite(staged, current, p.generation);
      result.stale += plan.stale;
      if (plan.deleteVectors.length > 0) await deleteVectors(client, p, plan.deleteVectors);
      result.deleted += plan.remove.length;
      if (plan.replace.length > 0) {
        const pieces = new Map(ready.map((r) => [r.row.pk, r.pieces ?? []]));
        const target = writeTarget(p);
        const chunks = target
          ? await writeColumnRows(
              client,
              p,
              target,
              p.generation,
              columnRows(p, plan.replace, current),
              { memory: plan.replace.map((r) => pieces.get(r.pk)?.[0]?.vector) },
            )
          : await insertChunks(client, p, p.generation, chunkColumns(plan.replace, pieces));
        result.written += plan.replace.length;
        metrics?.chunksWritten.inc({ pipeline: p.name }, chunks);
      }
      await clearDeadLetters(client, p.name, plan.clearLetters);
      if (plan.keep.length > 0)
        result.metadataUpdated += await updateMetadata(client, p, plan.keep);
      const stagedKeys = ready.filter((r) => r.staged).map((r) => r.row.pk);
      if (stagedKeys.length > 0) await clearStagedVectors(client, batchId, stagedKeys);
      left = left.filter(({ row }) => busy.has(row.pk));
      return busy.size;
    });
  await writeAroundBusyRows(read.name, writeOnce);
}

/** The chunks of the rows to replace, as insertChunks takes them. */
function chunkColumns(
  replace: readonly { pk: string; contentHash: string; metadata: string }[],
  pieces: ReadonlyMap<string, Piece[]>,
): ChunkColumns {
  const c: ChunkColumns = {
    pk: [],
    index: [],
    chunk: [],
    vector: [],
    metadata: [],
    contentHash: [],
  };
  for (const r of replace) {
    for (const x of pieces.get(r.pk) ?? []) {
      c.pk.push(r.pk);
      c.index.push(x.index);
      c.chunk.push(x.chunk);
      c.vector.push(x.vector ?? []);
      c.metadata.push(r.metadata);
      c.contentHash.push(r.contentHash);
    }
  }
  return c;
}
