// Writing a completed batch part (docs/architecture.md, decision 17): its output file streamed, each
// row whose source still has the content it was submitted with chunked again from that content and
// written through the walk's compare-and-set write (writeRows), the error file's lines
// dead-lettered, and the tokens added to the ledger once, with the part marked written.
import { ApplicationFailure } from '@temporalio/activity';
import { rowOf } from '../src/batch/parts.js';
import type { StagedRow } from '../src/batch/decide.js';
import { chunkDocument } from '../src/chunking/document.js';
import { markWritten, readPart, type BatchPart } from '../src/db/batch-parts.js';
import { atGeneration, getPipeline, type Pipeline } from '../src/db/catalog.js';
import { recordFailedBatch, recordRefusedContent } from '../src/db/dead-letters.js';
import { withTransaction } from '../src/db/pool.js';
import { readSourceRows } from '../src/db/source.js';
import { recordSpend } from '../src/db/token-ledger.js';
import { readTextVectors, recordTexts } from '../src/db/embedded-texts.js';
import { vectorSettings } from '../src/config/pipeline.js';
import { textKey } from '../src/texts/once.js';
import type { BatchOutputLine } from '../src/providers/openai-batch.js';
import { batchContext, type PartRef } from './batch-api.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';
import { followingSchemaChanges } from './schema.js';
import { emptyResult, writeRows, type Piece, type WalkBatchResult } from './walk-batch.js';

/** Output lines written per transaction. */
const WRITE_ROWS = 500;

export interface WritePartResult {
  written: number;
  stale: number;
  deadLettered: number;
  tokens: number;
}

export function createBatchWrite(deps: ActivityDeps) {
  const { pool, log } = deps;
  const { batchesFor } = batchContext(deps);
  return {
    /**
     * Reads the part's output and error files and writes the vectors (compare-and-set, as a walk's
     * batch), dead-letters the lines that failed, and counts what was paid once.
     */
    async writeBatchPart({ backfill, part, pipeline }: PartRef): Promise<WritePartResult> {
      return classified(() =>
        followingSchemaChanges(deps, pipeline, async () => {
          const recorded = await readPart(pool, backfill, part);
          if (!recorded?.providerBatchId)
            throw ApplicationFailure.nonRetryable(`part ${part} of ${backfill} has no batch`);
          if (recorded.status === 'written') {
            const { written, stale, deadLettered, paidTokens: tokens } = recorded;
            return { written, stale, deadLettered, tokens };
          }
          const live = await getPipeline(pool, pipeline);
          const p = atGeneration(live, recorded.generation);
          const api = batchesFor(p ?? live);
          const batch = await api.retrieve(recorded.providerBatchId);
          const result = emptyResult();
          const letters: { pk: string; contentHash: string; error: string }[] = [];
          let paidTexts = 0;
          // The rows some line answered, in the output or the error file.
          const answered = new Set<number>();
          const place = (line: BatchOutputLine): number | undefined => {
            const i = rowOf(line.customId);
            if (i === undefined || i >= recorded.keys.length) return undefined;
            answered.add(i);
            return i;
          };
          if (batch.outputFileId) {
            let pending: BatchOutputLine[] = [];
            const flush = async (): Promise<void> => {
              if (p) await writeOutput(deps, p, recorded, pending, result);
              else result.stale += pending.length; // that generation is gone
              pending = [];
            };
            for await (const line of api.lines(batch.outputFileId)) {
              if (place(line) === undefined) continue;
              result.tokens += line.tokens;
              paidTexts += line.vectors?.length ?? 0;
              pending.push(line);
              if (pending.length >= WRITE_ROWS) await flush();
            }
            await flush();
          }
          // A line the model refused waits for its row's content to change, like a refused input
          // online; one that did not run (the batch expired first, a timeout) goes round again
          // through change sync, as a failed batch's keys do.
          const unrun: string[] = [];
          if (batch.errorFileId) {
            for await (const line of api.lines(batch.errorFileId)) {
              const i = place(line);
              if (i === undefined) continue;
              const pk = recorded.keys[i] ?? '';
              if (line.retryable) {
                unrun.push(pk);
                continue;
              }
              letters.push({
                pk,
                contentHash: recorded.contentHashes[i] ?? '',
                error: line.error ?? 'the provider refused the request',
              });
            }
            await recordRefusedContent(pool, pipeline, recorded.generation, letters);
            if (letters.length > 0)
              log.warn(
                { pipeline, part: `${backfill}/${part}`, keys: letters.map((l) => l.pk) },
                'rows the provider refused in a batch were set aside in embedsync.dead_letters',
              );
          }
          // Rows that rode along without a line of their own: their texts were all in other rows'
          // lines, now on record. One whose texts are not (their line failed) goes round too.
          const riders = recorded.keys.flatMap((_, i) => (answered.has(i) ? [] : [i]));
          let reused = 0;
          if (p && riders.length > 0) {
            const written = await writeRiders(deps, p, recorded, riders, result);
            reused = written.reused;
            unrun.push(...written.unresolved);
          }
          if (unrun.length > 0) {
            const why = `the provider's batch ${batch.id} ended ${batch.status} before these rows ran`;
            await recordFailedBatch(pool, pipeline, unrun, recorded.generation, why);
            log.warn(
              { pipeline, part: `${backfill}/${part}`, rows: unrun.length, status: batch.status },
              'rows a batch did not run were set aside in embedsync.dead_letters, to go round again',
            );
          }
          const outcome = {
            written: result.written,
            stale: result.stale,
            deadLettered: letters.length + unrun.length,
            paidTokens: result.tokens,
          };
          // What the batch paid is counted once: with the part marked written, in one transaction,
          // so a write retried after a kill adds nothing to the ledger.
          const e = api.config;
          await withTransaction(pool, async (client) => {
            if (!(await markWritten(client, backfill, part, outcome))) return;
            await recordSpend(client, {
              pipeline,
              generation: recorded.generation,
              mode: 'batch',
              provider: e.provider,
              model: e.model,
              tokens: result.tokens,
              requests: batch.counts.completed,
              texts: paidTexts,
              reused,
            });
          });
          // Its files are no longer needed; the provider keeps them otherwise.
          for (const id of [batch.outputFileId, batch.errorFileId]) {
            if (id) await api.deleteFile(id).catch(() => undefined);
          }
          return { ...outcome, tokens: outcome.paidTokens };
        }),
      );
    },
  };
}

/**
 * Writes a group of output lines: each row whose source still has the content it was submitted
 * with gets its chunks (chunked again from that same content) and their vectors.
 */
async function writeOutput(
  deps: ActivityDeps,
  p: Pipeline,
  part: BatchPart,
  lines: readonly BatchOutputLine[],
  result: WalkBatchResult,
): Promise<void> {
  const at = lines.map((l) => rowOf(l.customId) ?? -1);
  const keys = at.map((i) => part.keys[i] ?? '');
  const current = new Map((await readSourceRows(deps.pool, p, keys)).map((r) => [r.pk, r]));
  const rows: { row: StagedRow; pieces: Piece[] }[] = [];
  lines.forEach((line, n) => {
    const i = at[n] ?? -1;
    const pk = part.keys[i] ?? '';
    const hash = part.contentHashes[i] ?? '';
    const source = current.get(pk);
    const chunks = source ? chunkDocument(p.config, source.document, source.context) : [];
    // Changed or gone since it was submitted: its change is already queued for a sync.
    if (!source || source.contentHash !== hash || chunks.length !== line.vectors?.length) {
      result.stale += 1;
      return;
    }
    const vectors = line.vectors;
    rows.push({
      row: { pk, action: 'embed', document: null, context: null, contentHash: hash },
      pieces: piecesOf(pk, chunks, vectors),
    });
  });
  if (rows.length === 0) return;
  await writeRows(deps, p, `batch:${part.backfill}`, rows, result);
  // On record for any batch to reuse (decision 16): a sync of a row sharing a text pays nothing.
  const settings = vectorSettings(p.config.embedding);
  const pieces = rows.flatMap((r) => r.pieces);
  await recordTexts(deps.pool, {
    key: pieces.map((x) => textKey(settings, x.chunk)),
    embedding: pieces.map((x) => x.vector ?? []),
  }).catch((err: unknown) =>
    deps.log.warn({ err, pipeline: p.name }, 'could not record the texts of a batch part'),
  );
}

/**
 * Writes the rows of a part that had no line of their own (every text of theirs was in an earlier
 * row's line) from the record of texts, which the part's output has just filled. Returns the texts
 * reused, and the keys still in step with the part whose texts are not on record (their line failed
 * or went stale), which go round again through change sync.
 */
async function writeRiders(
  deps: ActivityDeps,
  p: Pipeline,
  part: BatchPart,
  riders: readonly number[],
  result: WalkBatchResult,
): Promise<{ reused: number; unresolved: string[] }> {
  const settings = vectorSettings(p.config.embedding);
  const unresolved: string[] = [];
  let reused = 0;
  for (let start = 0; start < riders.length; start += WRITE_ROWS) {
    const at = riders.slice(start, start + WRITE_ROWS);
    const keys = at.map((i) => part.keys[i] ?? '');
    const current = new Map((await readSourceRows(deps.pool, p, keys)).map((r) => [r.pk, r]));
    const chunked = at.flatMap((i) => {
      const pk = part.keys[i] ?? '';
      const source = current.get(pk);
      // Changed or gone since it was submitted: its change is already queued for a sync.
      if (!source || source.contentHash !== part.contentHashes[i]) {
        result.stale += 1;
        return [];
      }
      return [
        {
          pk,
          hash: source.contentHash,
          chunks: chunkDocument(p.config, source.document, source.context),
        },
      ];
    });
    const known = await readTextVectors(
      deps.pool,
      chunked.flatMap((r) => r.chunks.map((c) => textKey(settings, c))),
    );
    const rows: { row: StagedRow; pieces: Piece[] }[] = [];
    for (const r of chunked) {
      const vectors = r.chunks.map((c) => known.get(textKey(settings, c)));
      if (vectors.some((v) => v === undefined)) {
        unresolved.push(r.pk);
        continue;
      }
      reused += r.chunks.length;
      rows.push({
        row: { pk: r.pk, action: 'embed', document: null, context: null, contentHash: r.hash },
        pieces: piecesOf(r.pk, r.chunks, vectors),
      });
    }
    if (rows.length > 0) await writeRows(deps, p, `batch:${part.backfill}`, rows, result);
  }
  return { reused, unresolved };
}

/** A row's chunks with their vectors, as the walk's write takes them. */
export function piecesOf(
  pk: string,
  chunks: readonly string[],
  vectors: readonly (number[] | string | undefined)[],
): Piece[] {
  return chunks.map((chunk, index) => {
    const v = vectors[index];
    // The record keeps pgvector's text form, a JSON array.
    const vector = typeof v === 'string' ? (JSON.parse(v) as number[]) : (v ?? []);
    return { pk, index, chunk, id: `${pk}\u0000${index}`, size: 0, tokens: 0, vector };
  });
}
