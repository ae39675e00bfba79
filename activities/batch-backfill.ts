// A batch-mode backfill's activities (docs/architecture.md, decision 17): submit a part of the
// table to the provider's Batch API, poll its batch, cancel what is in flight; writing a completed
// part is activities/batch-write.ts. Reading and chunking rows are the walk's (src/db/source.ts,
// decideFetch, chunkDocument).
import { ApplicationFailure } from '@temporalio/activity';
import {
  addSize,
  customId,
  EMPTY_PART,
  fits,
  PART_METADATA_KEY,
  partLimits,
  partName,
  type PartSize,
} from '../src/batch/parts.js';
import { decideFetch, type StagedRow } from '../src/batch/decide.js';
import { chunkDocument } from '../src/chunking/document.js';
import { countTokens } from '../src/chunking/tokens.js';
import { vectorSettings, type OpenAIEmbeddingConfig } from '../src/config/pipeline.js';
import {
  clearEarlierParts,
  markEnded,
  markSubmitted,
  nextAttempt,
  readPart,
  recordPart,
  recordPoll,
  unfinishedParts,
  type BatchPart,
} from '../src/db/batch-parts.js';
import { atGeneration, getPipeline, instanceId, type Pipeline } from '../src/db/catalog.js';
import { recordRefusedContent, refusedContent } from '../src/db/dead-letters.js';
import { tooLongRows } from './column-rows.js';
import { readTextVectors } from '../src/db/embedded-texts.js';
import { recordSpend } from '../src/db/token-ledger.js';
import { textKey } from '../src/texts/once.js';
import { readKeyPage, readSourceRows } from '../src/db/source.js';
import { readEmbeddedHeads } from '../src/db/vectors.js';
import { requestLine, type BatchPhase } from '../src/providers/openai-batch.js';
import { ProviderRejectedError } from '../src/providers/errors.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';
import { followingSchemaChanges } from './schema.js';
import { batchContext, type PartRef } from './batch-api.js';
import { createBatchWrite, piecesOf } from './batch-write.js';
import { emptyResult, writeRows, type Piece } from './walk-batch.js';

/** Keys read at a time while a part is gathered. */
const SCAN_PAGE = 1000;

export interface SubmitPartInput extends PartRef {
  /** The last key an earlier part went through; null: from the start. */
  after: string | null;
  /** Tokens this part may carry (the room left under the enqueued-token limit). */
  maxTokens: number;
  /** Inputs this part may carry, at most OpenAI's 50,000. */
  maxInputs?: number;
}

export interface SubmitPartResult {
  /** Rows sent (0: the scan found nothing to embed and no batch was made). */
  rows: number;
  inputs: number;
  tokens: number;
  /** Keys the scan went through, rows already in step included. */
  scanned: number;
  cursor: string | null;
  /** The scan reached the end of the table. */
  exhausted: boolean;
}

export interface PollPartResult {
  phase: BatchPhase;
  status: string;
  total: number;
  completed: number;
  failed: number;
  /** Why a failed batch failed (OpenAI's code, such as token_limit_exceeded). */
  errorCode?: string;
  errorMessage?: string;
}

export function createBatchBackfillActivities(deps: ActivityDeps) {
  const { pool, log } = deps;
  const { pipelineAt, batchesFor } = batchContext(deps);

  /**
   * Sends a recorded part. `lines`: it was recorded by this very attempt, so no batch can exist
   * for it yet; otherwise an earlier attempt may have made one, which is looked for first.
   */
  const send = async (p: Pipeline, part: BatchPart, lines: string[] | undefined): Promise<void> => {
    const api = batchesFor(p);
    const name = partName(await instanceId(pool), part.backfill, part.part, part.attempt);
    // Listed back to a minute before it was recorded: the database's and the provider's clocks
    // differ a little.
    const found = lines ? undefined : await api.find(PART_METADATA_KEY, name, part.recordedAt - 60);
    if (found) {
      log.info({ pipeline: p.name, part: name, batch: found.id }, "found the part's batch");
      await markSubmitted(pool, part.backfill, part.part, found.id, found.status);
      return;
    }
    const body = lines ?? (await requestLines(p, part, api.config));
    const batch = await api.submit(body, { [PART_METADATA_KEY]: name, pipeline: p.name });
    await markSubmitted(pool, part.backfill, part.part, batch.id, batch.status);
    log.info({ pipeline: p.name, part: name, batch: batch.id }, 'batch created');
  };

  /** Request lines for a part recorded by an attempt that may not have sent it. */
  const requestLines = async (
    p: Pipeline,
    part: BatchPart,
    config: OpenAIEmbeddingConfig,
  ): Promise<string[]> => {
    const rows = new Map((await readSourceRows(pool, p, part.keys)).map((r) => [r.pk, r]));
    const lines: string[] = [];
    const hashes: string[] = [];
    const keys: string[] = [];
    const inPart = new PartTexts(vectorSettings(p.config.embedding));
    for (const key of part.keys) {
      const row = rows.get(key);
      if (!row) continue; // gone since: its delete is synced
      const chunks = chunkDocument(p.config, row.document, row.context);
      if (inPart.adds(chunks)) lines.push(requestLine(config, customId(keys.length), chunks));
      keys.push(key);
      hashes.push(row.contentHash);
    }
    // No batch was made for the earlier record: this read is what the batch will carry.
    await recordPart(pool, { ...part, keys, contentHashes: hashes });
    return lines;
  };

  /** Writes rows whose every text was on record, and counts those texts as reused. */
  const writeReused = async (
    p: Pipeline,
    backfill: string,
    rows: { row: StagedRow; pieces: Piece[] }[],
  ): Promise<void> => {
    if (rows.length === 0) return;
    await writeRows(deps, p, `batch:${backfill}`, rows, emptyResult());
    await recordSpend(pool, {
      pipeline: p.name,
      generation: p.generation,
      mode: 'batch',
      provider: p.config.embedding.provider,
      model: p.config.embedding.model,
      tokens: 0,
      requests: 0,
      texts: 0,
      reused: rows.reduce((n, r) => n + r.pieces.length, 0),
    });
  };

  return {
    ...createBatchWrite(deps),

    /**
     * Gathers the next part after `after` (rows whose vectors are not in step, up to the limits),
     * records it, then creates its provider batch. A retry finds its record and the batch the
     * earlier attempt made, so no part is ever paid for twice.
     */
    async submitBatchPart(input: SubmitPartInput): Promise<SubmitPartResult> {
      const { pipeline, backfill, part, generation } = input;
      return classified(() =>
        followingSchemaChanges(deps, pipeline, async () => {
          const p = atGeneration(await getPipeline(pool, pipeline), generation);
          // That generation is gone (its re-embed was abandoned): nothing more to send for it.
          if (!p)
            return {
              rows: 0,
              inputs: 0,
              tokens: 0,
              scanned: 0,
              cursor: input.after,
              exhausted: true,
            };
          const api = batchesFor(p);
          const settings = vectorSettings(p.config.embedding);
          const earlier = await readPart(pool, backfill, part);
          if (earlier) {
            if (earlier.status === 'recorded') await send(p, earlier, undefined);
            return resultOf(earlier, input.after);
          }
          if (part === 0) await clearEarlierParts(pool, pipeline, backfill);
          const limits = partLimits(input.maxTokens, input.maxInputs);
          let held: PartSize = EMPTY_PART;
          const keys: string[] = [];
          const hashes: string[] = [];
          const lines: string[] = [];
          const inPart = new PartTexts(settings);
          let cursor = input.after;
          let scanned = 0;
          let exhausted = false;
          scan: for (;;) {
            const page = await readKeyPage(pool, p, cursor, SCAN_PAGE);
            const rows = await readSourceRows(pool, p, page);
            const heads = await readEmbeddedHeads(
              pool,
              p,
              rows.map((r) => r.pk),
            );
            const decided = new Map(
              decideFetch(page, rows, heads, p.generation).map((r) => [r.pk, r]),
            );
            const refused = await refusedContent(pool, p.name, p.generation, page);
            // A column pipeline's text too long for the model is refused before it goes in a part.
            const tooLong = tooLongRows(
              p,
              [...decided.values()].filter(
                (r) => r.action === 'embed' && !refused.has(`${r.pk}\u0000${r.contentHash ?? ''}`),
              ),
            );
            await recordRefusedContent(pool, p.name, p.generation, tooLong);
            for (const l of tooLong) refused.add(`${l.pk}\u0000${l.contentHash}`);
            const chunksOf = new Map<string, string[]>();
            for (const key of page) {
              const row = decided.get(key);
              if (row?.action !== 'embed' || refused.has(`${key}\u0000${row.contentHash ?? ''}`))
                continue;
              chunksOf.set(key, chunkDocument(p.config, row.document ?? '', row.context));
            }
            // Texts some batch has paid for already (decision 16) are not sent again: a row whose
            // every chunk is on record is written from the record now, paying nothing.
            const textKeys = [...chunksOf.values()].flat().map((c) => textKey(settings, c));
            const known = await readTextVectors(pool, textKeys);
            const fromRecord: { row: StagedRow; pieces: Piece[] }[] = [];
            for (const key of page) {
              const row = decided.get(key);
              const chunks = chunksOf.get(key);
              if (row && chunks) {
                const vectors = chunks.map((c) => known.get(textKey(settings, c)));
                if (vectors.every((v) => v !== undefined)) {
                  fromRecord.push({ row, pieces: piecesOf(key, chunks, vectors) });
                  cursor = key;
                  scanned += 1;
                  continue;
                }
                // Every text already in a line of this part: the row rides along without a line of
                // its own, written from the record once the part's output is (writeBatchPart).
                if (chunks.length > 0 && inPart.covers(chunks, known)) {
                  keys.push(key);
                  hashes.push(row.contentHash ?? '');
                  cursor = key;
                  scanned += 1;
                  continue;
                }
                const line = requestLine(api.config, customId(keys.length), chunks);
                const size: PartSize = {
                  inputs: chunks.length,
                  tokens: chunks.reduce((sum, c) => sum + countTokens(c), 0),
                  bytes: Buffer.byteLength(line) + 1,
                };
                if (!fits(held, size, limits)) {
                  await writeReused(p, backfill, fromRecord);
                  break scan;
                }
                held = addSize(held, size);
                inPart.adds(chunks);
                keys.push(key);
                hashes.push(row.contentHash ?? '');
                lines.push(line);
              }
              cursor = key;
              scanned += 1;
            }
            await writeReused(p, backfill, fromRecord);
            if (page.length < SCAN_PAGE) {
              exhausted = true;
              break;
            }
          }
          const record = {
            backfill,
            part,
            pipeline,
            generation: p.generation,
            keys,
            contentHashes: hashes,
            cursor,
            scanned,
            inputs: held.inputs,
            tokens: held.tokens,
          };
          const result = { rows: keys.length, inputs: held.inputs, tokens: held.tokens };
          if (keys.length === 0) return { ...result, scanned, cursor, exhausted };
          // Recorded before the batch exists: a kill from here on is found by the retry.
          await recordPart(pool, record);
          const recorded = await readPart(pool, backfill, part);
          if (recorded) await send(p, recorded, lines);
          return { ...result, scanned, cursor, exhausted };
        }),
      );
    },

    /** The part's batch as the provider has it now. */
    async pollBatchPart({
      backfill,
      part,
      pipeline,
      generation,
    }: PartRef): Promise<PollPartResult> {
      return classified(async () => {
        const p = await pipelineAt(pipeline, generation);
        const recorded = await readPart(pool, backfill, part);
        if (!recorded?.providerBatchId)
          throw ApplicationFailure.nonRetryable(`part ${part} of ${backfill} has no batch`);
        const batch = await batchesFor(p).retrieve(recorded.providerBatchId);
        await recordPoll(pool, backfill, part, {
          providerStatus: batch.status,
          completed: batch.counts.completed,
          failed: batch.counts.failed,
        });
        const [first] = batch.errors;
        return {
          phase: batch.phase,
          status: batch.status,
          ...batch.counts,
          ...(first ? { errorCode: first.code, errorMessage: first.message } : {}),
        };
      });
    },

    /**
     * The provider refused the part's batch for the account's enqueued-token limit: it is sent
     * again, as a new attempt, once the workflow finds room.
     */
    async resubmitBatchPart({ backfill, part, pipeline, generation }: PartRef): Promise<void> {
      return classified(async () => {
        await nextAttempt(pool, backfill, part);
        const recorded = await readPart(pool, backfill, part);
        if (recorded?.status === 'recorded')
          await send(await pipelineAt(pipeline, generation), recorded, undefined);
      });
    },

    /** The part's batch failed for good (or expired with nothing to write): recorded as failed. */
    async failBatchPart(input: PartRef & { error: string }): Promise<void> {
      return classified(() => markEnded(pool, input.backfill, input.part, 'failed', input.error));
    },

    /**
     * Cancels the provider's batches of every part of the backfill still in flight, and marks
     * them cancelled. A part whose batch has already completed is paid for: it is left for the
     * workflow to write (its number is returned) rather than thrown away.
     */
    async cancelBatchParts({
      pipeline,
      backfill,
      generation,
    }: Omit<PartRef, 'part'>): Promise<{ cancelled: number; completed: number[] }> {
      return classified(async () => {
        const api = batchesFor(await pipelineAt(pipeline, generation));
        let cancelled = 0;
        const completed: number[] = [];
        for (const part of await unfinishedParts(pool, backfill)) {
          if (part.providerBatchId) {
            const batch = await api.retrieve(part.providerBatchId);
            if (batch.phase === 'completed') {
              completed.push(part.part);
              continue;
            }
            if (batch.phase === 'running' && batch.status !== 'cancelling') {
              try {
                await api.cancel(part.providerBatchId);
                cancelled += 1;
              } catch (err) {
                // Over meanwhile: nothing left to cancel.
                if (!(err instanceof ProviderRejectedError) && !isConflict(err)) throw err;
              }
            }
          }
          await markEnded(pool, backfill, part.part, 'cancelled', 'the backfill was cancelled');
        }
        log.info({ pipeline, backfill, cancelled, completed }, 'batch backfill cancelled');
        return { cancelled, completed };
      });
    },
  };
}

/** A 409 (the batch is already over) comes back as a provider-unavailable error; its text says. */
const isConflict = (err: unknown): boolean =>
  err instanceof Error &&
  /Cannot cancel a batch|status '(completed|failed|cancelled|expired)'/.test(err.message);

function resultOf(part: BatchPart, after: string | null): SubmitPartResult {
  return {
    rows: part.keys.length,
    inputs: part.inputs,
    tokens: part.tokens,
    scanned: part.scanned,
    cursor: part.cursor ?? after,
    // Only an empty part ever ends the scan in the record's absence; a recorded one has a next.
    exhausted: false,
  };
}

/**
 * The texts a part's lines carry, so that a row whose every text is carried already (or on record)
 * gets no line of its own and is not paid for twice. A row with some new texts sends them all: its
 * line's vectors are its chunks, in order.
 */
class PartTexts {
  private readonly keys = new Set<string>();

  constructor(private readonly settings: string) {}

  /** Whether every chunk is in an earlier line of the part or in `known` (the record). */
  covers(chunks: readonly string[], known?: ReadonlyMap<string, string>): boolean {
    return chunks.every((c) => {
      const key = textKey(this.settings, c);
      return this.keys.has(key) || known?.has(key) === true;
    });
  }

  /** Adds a row's texts to the part's lines; false (nothing added) if it needs no line. */
  adds(chunks: readonly string[]): boolean {
    if (chunks.length > 0 && this.covers(chunks)) return false;
    for (const c of chunks) this.keys.add(textKey(this.settings, c));
    return true;
  }
}
