// The InvokeModel bodies of Bedrock's rerank models, and their answers.
//   Cohere Rerank 3.5: { query, documents, top_n, api_version: 2 } → { id, results: [{ index, relevance_score }] }
//   Amazon Rerank 1.0: { query, documents, top_n }                  → { results: [{ index, relevance_score }] }
// Results come most relevant first; index is the document's place in the request.
import { ConfigError, type RerankConfig } from '../config/pipeline.js';
import { baseModelId } from './models.js';
import { MalformedResponseError } from './bedrock-bodies.js';

export type RerankFamily = 'cohere-rerank' | 'amazon-rerank';

const RERANK_MODELS: ReadonlyMap<string, RerankFamily> = new Map([
  ['cohere.rerank-v3-5:0', 'cohere-rerank'],
  ['amazon.rerank-v1:0', 'amazon-rerank'],
]);

/** The family of a rerank model id, inference profile or ARN; undefined for one not known. */
export function rerankFamily(model: string): RerankFamily | undefined {
  return RERANK_MODELS.get(baseModelId('bedrock', model));
}

/** Apply-time check: a rerank model embedsync cannot call would only fail at the first search. */
export function checkRerankModel(config: { rerank?: RerankConfig }): void {
  if (config.rerank?.provider !== 'bedrock') return;
  const { model } = config.rerank;
  if (rerankFamily(model)) return;
  throw new ConfigError(
    'rerank.model',
    `bedrock has no rerank model "${model}" that embedsync knows; known: ${[...RERANK_MODELS.keys()].join(', ')}`,
  );
}

export function rerankBody(
  family: RerankFamily,
  query: string,
  documents: readonly string[],
  topN: number,
): Record<string, unknown> {
  // Cohere's model on Bedrock refuses a body without api_version 2 ("is not greater or equal to 2").
  return family === 'cohere-rerank'
    ? { query, documents, top_n: topN, api_version: 2 }
    : { query, documents, top_n: topN };
}

export interface RerankResult {
  /** The document's place in the request. */
  index: number;
  relevanceScore: number;
}

/** The results, most relevant first, each naming a document that was sent exactly once. */
export function parseRerankResponse(
  model: string,
  json: unknown,
  documents: number,
): RerankResult[] {
  const results = (json as { results?: unknown } | null)?.results;
  if (!Array.isArray(results))
    throw new MalformedResponseError(`${model} answered without results`);
  const seen = new Set<number>();
  return results.map((r: unknown) => {
    const { index, relevance_score: score } = (r ?? {}) as Record<string, unknown>;
    if (
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      index < 0 ||
      index >= documents ||
      seen.has(index) ||
      typeof score !== 'number' ||
      !Number.isFinite(score)
    )
      throw new MalformedResponseError(`${model} answered with a result that names no document`);
    seen.add(index);
    return { index, relevanceScore: score };
  });
}
