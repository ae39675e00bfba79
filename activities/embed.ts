// Stage 3: embed the staged chunks that have no vector yet. Each request's vectors are committed as
// soon as they arrive, so a retry (of this stage or a later one) never pays for them again.
//
// Requests are as large as the model takes (and no larger than a minute's tokens budget). Under a
// requests- or tokens-per-minute limit each request first takes its turn from the provider's shared
// buckets and waits for it (src/rate-limit/buckets.ts); a 429 holds the whole fleet back for as
// long as the provider asked. The requests-per-minute limit also paces the activities themselves
// (src/rate-limit/plan.ts). Requests, tokens and waits are counted in the worker's metrics
// (src/metrics/worker.ts). An input the provider refuses is isolated by bisection
// (src/providers/isolate.ts); its row goes to embedsync.dead_letters with the error, its staged
// chunks are dropped, and its staged row becomes 'keep', so the write stage leaves the row's
// existing vectors (of its previous content, if any) as they are while the rest of the batch is
// written. The row is tried again when its content changes.
import { Context } from '@temporalio/activity';
import { toSql } from 'pgvector';
import { countCharacters, countTokens, estimateTokens } from '../src/chunking/tokens.js';
import type { EmbeddingConfig } from '../src/config/pipeline.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { recordRefusedRows } from '../src/db/dead-letters.js';
import { withTransaction, type Pool } from '../src/db/pool.js';
import { markRowsKept, readStagedChunks, storeVectors } from '../src/db/staging.js';
import { InputIsolator } from '../src/providers/isolate.js';
import type { ModelFacts } from '../src/providers/models.js';
import { nextRequest } from '../src/providers/requests.js';
import type { ActivityDeps } from './deps.js';
import { embedOnce } from './embed-once.js';
import { classified, heartbeat } from './errors.js';
import { providerCall } from './provider-call.js';
import type { BatchRef, EmbedResult } from './types.js';

export interface EmbedInput extends BatchRef {
  /**
   * Send one task-queue slot's worth of requests (see src/rate-limit/plan.ts) and report what
   * remains; the caller calls again until nothing does. Without it every chunk is embedded in this
   * call.
   */
  paced?: boolean;
  /**
   * Run as a local activity, in the workflow's own task: the requests bypass the provider's task
   * queue, so the call declines (embeds nothing, `declined`) where the queue's rate paces them (a
   * requests-per-minute limit) or this worker does not host the provider. The token and request
   * buckets in Postgres still apply.
   */
  local?: boolean;
}

export interface EmbedBatchResult extends EmbedResult {
  /** Chunks still without a vector (after a paced call). */
  remaining: number;
  /** Source rows this call set aside in embedsync.dead_letters. */
  deadLettered: number;
  /** A local call that left the batch to the provider's task queue (see EmbedInput.local). */
  declined?: boolean;
}

interface PendingChunk {
  pk: string;
  chunk_index: number;
  chunk: string;
  id: string;
  tokens: number;
  size: number;
}

export function createEmbedBatch(deps: ActivityDeps) {
  const { pool, log, providers, rates } = deps;
  return async function embedBatch(input: EmbedInput): Promise<EmbedBatchResult> {
    return classified(async () => {
      const { pipeline, batchId } = input;
      const ctx = Context.current();
      const result: EmbedBatchResult = {
        embedded: 0,
        tokens: 0,
        requests: 0,
        remaining: 0,
        deadLettered: 0,
      };
      // The generation's config (a re-embed's pending one); none if that generation is gone.
      const p = atGeneration(await getPipeline(pool, pipeline), input.generation);
      if (!p) return result;
      if (input.local && !hostsUnpaced(providers, rates, p.config.embedding.provider))
        return { ...result, declined: true };
      const call = providerCall(deps, p, 'sync', () => heartbeat(ctx, result));
      const { provider, facts, plan, limits } = call;
      const sendOnce = embedOnce(deps, p, 'sync', call, () => heartbeat(ctx, result));
      const embedding = p.config.embedding;
      const { pending, embedded } = await stagedChunks(pool, batchId, embedding, facts);
      const maxRequests = input.paced ? (plan?.requestsPerActivity ?? 1) : Infinity;
      const send = async (chunks: PendingChunk[]): Promise<void> => {
        result.requests += 1;
        const { vectors, tokens } = await sendOnce(chunks);
        await storeVectors(pool, batchId, {
          pk: chunks.map((c) => c.pk),
          index: chunks.map((c) => c.chunk_index),
          vectors: vectors.map((v) => toSql(v) as string),
        });
        result.embedded += chunks.length;
        result.tokens += tokens;
        heartbeat(ctx, result);
      };
      let queue = pending;
      const isolator = new InputIsolator(send, embedded, () => queue);
      const setAside = async (): Promise<void> => {
        const failures = isolator.takeFailures();
        if (failures.size === 0) return;
        await deadLetter(pool, p.name, batchId, failures);
        result.deadLettered += failures.size;
        log.warn(
          { pipeline, batch: batchId, keys: [...failures.keys()] },
          'rows the provider refused were set aside in embedsync.dead_letters',
        );
      };

      let sent = 0;
      while (queue.length > 0 && sent < maxRequests) {
        const group = nextRequest(queue, limits);
        await isolator.run(group);
        sent += 1;
        queue = queue.filter((c) => !isolator.settled(c));
        // A refusal counts as the input's fault only once the provider has accepted something else.
        if (isolator.anyAccepted) await setAside();
      }
      await setAside();
      result.remaining = queue.length;
      log.debug(
        { pipeline, batch: batchId, provider: provider.name, model: embedding.model, ...result },
        'chunks embedded',
      );
      return result;
    });
  };
}

/** Whether a local call may embed for `provider` here: hosted, and not paced by its queue's rate. */
function hostsUnpaced(
  providers: ActivityDeps['providers'],
  rates: ActivityDeps['rates'],
  provider: string,
): boolean {
  return providers.has(provider) && rates?.plan(provider)?.activitiesPerSecond === undefined;
}

/** The chunks still to embed, with their size in the model's unit and their token estimate. */
async function stagedChunks(
  pool: Pool,
  batchId: string,
  embedding: EmbeddingConfig,
  facts: ModelFacts,
): Promise<{ pending: PendingChunk[]; embedded: number }> {
  const rows = await readStagedChunks(pool, batchId);
  const pending: PendingChunk[] = [];
  for (const r of rows) {
    if (r.chunk === null) continue;
    const size = facts.unit === 'tokens' ? countTokens(r.chunk) : countCharacters(r.chunk);
    const tokens = facts.unit === 'tokens' ? size : estimateTokens(embedding, r.chunk);
    pending.push({
      pk: r.pk,
      chunk_index: r.chunk_index,
      chunk: r.chunk,
      id: `${r.pk}\u0000${r.chunk_index}`,
      tokens,
      size,
    });
  }
  return { pending, embedded: rows.length - pending.length };
}

/** Records refused rows and takes them out of the batch, in one transaction. */
async function deadLetter(
  pool: Pool,
  pipeline: string,
  batchId: string,
  failures: Map<string, string>,
): Promise<void> {
  await withTransaction(pool, async (client) => {
    await recordRefusedRows(client, pipeline, batchId, failures);
    await markRowsKept(client, batchId, [...failures.keys()]);
  });
}
