// What a backfill or re-embed will cost before it starts (`--dry-run`): the source table read in
// keyset pages of the walk's batch size, each page decided as the walk's batch decides it
// (src/batch/decide.ts), its rows chunked and measured as the walk measures them, and its requests
// sized as the walk sizes them (src/providers/requests.ts). Nothing is sent to a provider and
// nothing is written but a temporary table of the texts seen, so that identical texts count once
// however large the table: memory holds one page.
import { decideFetch } from '../batch/decide.js';
import { columnText } from '../chunking/column.js';
import { chunkDocument } from '../chunking/document.js';
import { estimateTokens } from '../chunking/tokens.js';
import { vectorSettings, type PipelineConfig } from '../config/pipeline.js';
import { atGeneration, type Pipeline } from '../db/catalog.js';
import { refusedContent } from '../db/dead-letters.js';
import { knownTexts } from '../db/embedded-texts.js';
import type { Pool, PoolClient } from '../db/pool.js';
import { readKeyPage, readSourceRows } from '../db/source.js';
import { readEmbeddedHeads } from '../db/vectors.js';
import { modelFacts, type SizeUnit } from '../providers/models.js';
import { costOf, priceOf, type ModelPrice } from '../providers/prices.js';
import { nextRequest, type RequestLimits } from '../providers/requests.js';
import type { EmbeddingProvider } from '../providers/types.js';
import { planProviderQueue } from '../rate-limit/plan.js';
import { textKey } from '../texts/once.js';

export type WalkKind = 'backfill' | 'reembed';

export interface EstimateOptions {
  kind: WalkKind;
  /** Keys per walk batch: requests never span two batches. */
  batchSize: number;
  /** The provider the walk would call: its request size and the environment's limits. */
  provider: Pick<EmbeddingProvider, 'name' | 'maxInputsPerRequest' | 'rateLimit'>;
  /** Every config served by that provider's queue: the workers pace by the strictest limits. */
  providerConfigs: readonly PipelineConfig[];
  /** Called after each page with the rows read so far. */
  onPage?: (rowsRead: number) => void;
}

export interface CostEstimate {
  pipeline: string;
  kind: WalkKind;
  generation: number;
  provider: string;
  model: string;
  /** Rows in the source table. */
  rows: number;
  /** Rows the walk would embed: every row for a re-embed, changed or new rows for a backfill. */
  rowsToEmbed: number;
  /** Rows whose vectors already match their content, or refused with this very content before. */
  rowsSkipped: number;
  /** The chunks of the rows to embed, and how many different texts they are. */
  chunks: number;
  distinctTexts: number;
  /**
   * Distinct texts whose vector is on record already (embedsync.embedded_texts, for as long as the
   * retention keeps it): reused, not paid for, if still there when the walk meets them.
   */
  textsOnRecord: number;
  /**
   * Tokens of the distinct texts: what the provider counts. Counted with the model's tokenizer, or
   * estimated (`tokensEstimated`) for models measured in characters, as the rate budget does.
   */
  tokens: number;
  /** Tokens of every chunk, repeats included. */
  chunkTokens: number;
  tokensEstimated: boolean;
  unit: SizeUnit;
  /** Requests as the walk's batches would send them. */
  requests: number;
  price: ModelPrice | undefined;
  /** Where the price comes from: the pipeline's `embedding.price`, or the list price. */
  priceSource: 'declared' | 'list' | undefined;
  /** US dollars; undefined where the price (or a batch mode) is unknown. */
  cost: { online: number | undefined; batch: number | undefined };
  /** The limits the workers would pace by, and the time they allow; undefined: no limit. */
  limits: { requestsPerMinute: number | undefined; tokensPerMinute: number | undefined };
  minutes: number | undefined;
}

/** A page's chunk texts with their hashes: what the temporary table keeps of each. */
interface Piece {
  hash: string;
  tokens: number;
}

/**
 * Walks the pipeline's source as a backfill (at its live generation) or a re-embed (at its pending
 * config) would, and counts what it would send. One pooled connection holds a temporary table of
 * the texts seen while it runs.
 */
export async function estimateWalk(
  pool: Pool,
  p: Pipeline,
  options: EstimateOptions,
): Promise<CostEstimate> {
  const target = walkTarget(p, options.kind);
  const { config } = target.pipeline;
  const facts = modelFacts(config.embedding);
  const plan = planProviderQueue(options.provider, options.providerConfigs);
  const limits: RequestLimits = {
    maxInputs: Math.min(options.provider.maxInputsPerRequest, facts.maxInputsPerRequest),
    maxTokens: Math.min(facts.maxTokensPerRequest, plan.tokensPerRequest),
  };
  const totals = {
    rows: 0,
    rowsToEmbed: 0,
    chunks: 0,
    distinctTexts: 0,
    textsOnRecord: 0,
    tokens: 0,
  };
  const settings = vectorSettings(config.embedding);
  let chunkTokens = 0;
  let requests = 0;
  const client = await pool.connect();
  try {
    const seen = await TextsSeen.create(client);
    let after: string | null = null;
    for (;;) {
      const keys = await readKeyPage(client, target.pipeline, after, options.batchSize);
      if (keys.length === 0) break;
      after = keys[keys.length - 1] ?? null;
      const toEmbed = await rowsToEmbed(client, target, keys);
      totals.rows += keys.length;
      totals.rowsToEmbed += toEmbed.length;
      const pieces: Piece[] = [];
      for (const row of toEmbed) {
        for (const chunk of chunkDocument(config, row.document ?? '', row.context ?? '')) {
          // The model's tokenizer, or the rate budget's estimate for models measured in characters.
          const tokens = estimateTokens(config.embedding, chunk);
          pieces.push({ hash: textKey(settings, chunk), tokens });
        }
      }
      totals.chunks += pieces.length;
      chunkTokens += pieces.reduce((n, x) => n + x.tokens, 0);
      const distinct = await seen.add(pieces);
      totals.distinctTexts += distinct.length;
      // A text whose vector is on record is reused by the walk, not sent (decision 16).
      const known = await knownTexts(
        client,
        distinct.map((x) => x.hash),
      );
      totals.textsOnRecord += known.size;
      const fresh = distinct.filter((x) => !known.has(x.hash));
      totals.tokens += fresh.reduce((n, x) => n + x.tokens, 0);
      requests += countRequests(fresh, limits);
      options.onPage?.(totals.rows);
    }
    await seen.drop();
  } finally {
    client.release();
  }
  const price = priceOf(config.embedding);
  const declared = 'price' in config.embedding && config.embedding.price !== undefined;
  const rpm = plan.limit.requestsPerMinute;
  const tpm = plan.limit.tokensPerMinute;
  return {
    pipeline: p.name,
    kind: options.kind,
    generation: target.pipeline.generation,
    provider: config.embedding.provider,
    model: config.embedding.model,
    ...totals,
    rowsSkipped: totals.rows - totals.rowsToEmbed,
    chunkTokens,
    tokensEstimated: facts.unit !== 'tokens',
    unit: facts.unit,
    requests,
    price,
    priceSource: price === undefined ? undefined : declared ? 'declared' : 'list',
    cost: { online: costOf(totals.tokens, price), batch: costOf(totals.tokens, price, 'batch') },
    limits: { requestsPerMinute: rpm, tokensPerMinute: tpm },
    minutes: walkMinutes(requests, totals.tokens, rpm, tpm),
  };
}

/**
 * Minutes the requests take under the limits: the tighter of the two budgets decides. Undefined
 * with no limit declared, when the provider's answers alone set the pace.
 */
export function walkMinutes(
  requests: number,
  tokens: number,
  requestsPerMinute: number | undefined,
  tokensPerMinute: number | undefined,
): number | undefined {
  if (requestsPerMinute === undefined && tokensPerMinute === undefined) return undefined;
  return Math.max(
    requestsPerMinute === undefined ? 0 : requests / requestsPerMinute,
    tokensPerMinute === undefined ? 0 : tokens / tokensPerMinute,
  );
}

/** How many requests the walk makes of one batch's inputs (nextRequest, as the walk calls it). */
export function countRequests(
  inputs: readonly { tokens: number }[],
  limits: RequestLimits,
): number {
  let queue = inputs;
  let n = 0;
  while (queue.length > 0) {
    queue = queue.slice(nextRequest(queue, limits).length);
    n += 1;
  }
  return n;
}

/** The pipeline as the walk would see it, and whether its vectors are read to skip rows. */
interface WalkTarget {
  pipeline: Pipeline;
  /** A backfill, or a re-embed already under way, skips the rows it has written. */
  readsVectors: boolean;
}

function walkTarget(p: Pipeline, kind: WalkKind): WalkTarget {
  if (kind === 'backfill') return { pipeline: p, readsVectors: true };
  if (!p.pendingConfig || p.pendingGeneration === null)
    throw new Error(`${p.name} has no config change waiting to be re-embedded`);
  const building = atGeneration(p, p.pendingGeneration);
  if (building && building.generation !== p.generation)
    return { pipeline: building, readsVectors: true };
  // Not started: its table does not exist yet, and every row is embedded.
  const pending = { ...p, config: p.pendingConfig, generation: p.pendingGeneration };
  return { pipeline: pending, readsVectors: false };
}

/** The rows of a page the walk would send to the provider (activities/walk-batch.ts). */
async function rowsToEmbed(db: PoolClient, target: WalkTarget, keys: string[]) {
  const p = target.pipeline;
  const rows = await readSourceRows(db, p, keys);
  const pks = rows.map((r) => r.pk);
  const heads = target.readsVectors ? await readEmbeddedHeads(db, p, pks) : new Map();
  const changed = decideFetch(keys, rows, heads, p.generation).filter((r) => r.action === 'embed');
  if (!target.readsVectors || changed.length === 0) return changed;
  const refused = await refusedContent(
    db,
    p.name,
    p.generation,
    changed.map((r) => r.pk),
  );
  const sent = changed.filter((r) => !refused.has(`${r.pk}\u0000${r.contentHash ?? ''}`));
  // A column pipeline's text too long for the model is refused before it is sent (decision 18).
  if (!p.config.destination || p.config.destination.truncate) return sent;
  return sent.filter((r) => !('tooLong' in columnText(p.config, r.document ?? '')));
}

/**
 * The texts counted so far, as sha256 digests in a temporary table of this session: a million rows'
 * texts stay out of memory, and each page is one statement.
 */
class TextsSeen {
  private constructor(private readonly db: PoolClient) {}

  static async create(db: PoolClient): Promise<TextsSeen> {
    await db.query(
      'create temporary table if not exists embedsync_texts_seen (hash bytea primary key)',
    );
    await db.query('truncate embedsync_texts_seen');
    return new TextsSeen(db);
  }

  /** Records the pieces; returns those whose text had not been seen (each text once). */
  async add(pieces: readonly Piece[]): Promise<Piece[]> {
    const byHash = new Map<string, Piece>();
    for (const x of pieces) if (!byHash.has(x.hash)) byHash.set(x.hash, x);
    if (byHash.size === 0) return [];
    const { rows } = await this.db.query<{ hash: string }>(
      `insert into embedsync_texts_seen (hash)
         select decode(h, 'hex') from unnest($1::text[]) h
       on conflict do nothing
       returning encode(hash, 'hex') as hash`,
      [[...byHash.keys()]],
    );
    const fresh = new Set(rows.map((r) => r.hash));
    // In page order, as the walk's queue has them.
    return [...byHash.values()].filter((x) => fresh.has(x.hash));
  }

  async drop(): Promise<void> {
    await this.db.query('drop table if exists embedsync_texts_seen');
  }
}
