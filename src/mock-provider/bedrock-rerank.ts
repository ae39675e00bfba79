// POST /model/{modelId}/invoke for Bedrock's rerank models (Cohere Rerank 3.5, Amazon Rerank 1.0),
// after bedrock.ts has checked the signature. The relevance score is the share of the query's
// distinct words a document contains: deterministic, and meaningful enough that a document holding
// every query word outranks a near neighbour by vector that holds a few.
import { randomUUID } from 'node:crypto';
import { takeBedrockTurn } from './bedrock-errors.js';
import type { MockContext, MockReply } from './types.js';

export type RerankFamily = 'cohere-rerank' | 'amazon-rerank';

export function rerankFamily(modelId: string): RerankFamily | undefined {
  const id = modelId.slice(modelId.lastIndexOf('/') + 1).replace(/^(us|eu|apac|global)\./, '');
  if (id === 'cohere.rerank-v3-5:0') return 'cohere-rerank';
  if (id === 'amazon.rerank-v1:0') return 'amazon-rerank';
  return undefined;
}

// Bedrock's documented maximum of documents in one rerank request.
const MAX_DOCUMENTS = 1000;

const words = (text: string): Set<string> =>
  new Set(text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);

/** The share of the query's distinct words the document contains, from 0 to 1. */
export function overlapScore(query: string, document: string): number {
  const q = words(query);
  if (q.size === 0) return 0;
  const d = words(document);
  let shared = 0;
  for (const w of q) if (d.has(w)) shared += 1;
  return Math.round((shared / q.size) * 1e6) / 1e6;
}

type ErrorReply = (status: number, type: string, message: string) => MockReply;

/** The refusal Bedrock gives a body that breaks the model's schema, or undefined. */
function invalid(
  family: RerankFamily,
  body: Record<string, unknown>,
  malformed: (detail: string) => MockReply,
): MockReply | undefined {
  const allowed =
    family === 'cohere-rerank'
      ? ['query', 'documents', 'top_n', 'api_version', 'max_tokens_per_doc']
      : ['query', 'documents', 'top_n'];
  const extra = Object.keys(body).find((k) => !allowed.includes(k));
  if (extra) return malformed(`extraneous key [${extra}] is not permitted`);
  if (family === 'cohere-rerank') {
    if (body.api_version === undefined) return malformed('#: required key [api_version] not found');
    if (typeof body.api_version !== 'number' || body.api_version < 2)
      return malformed(
        `#/api_version: ${JSON.stringify(body.api_version)} is not greater or equal to 2`,
      );
  }
  if (typeof body.query !== 'string') return malformed('#: required key [query] not found');
  if (body.query.length === 0) return malformed('#/query: expected minLength: 1, actual: 0');
  const docs = body.documents;
  if (!Array.isArray(docs) || !docs.every((d) => typeof d === 'string'))
    return malformed('#/documents: expected type: JSONArray');
  if (docs.length === 0) return malformed('#/documents: expected minimum item count: 1, found: 0');
  if (docs.length > MAX_DOCUMENTS)
    return malformed(
      `#/documents: expected maximum item count: ${MAX_DOCUMENTS}, found: ${docs.length}`,
    );
  const topN = body.top_n;
  if (topN !== undefined && (typeof topN !== 'number' || !Number.isInteger(topN) || topN < 1))
    return malformed(`#/top_n: ${JSON.stringify(topN)} is not greater or equal to 1`);
  return undefined;
}

export function answerRerank(
  ctx: MockContext,
  modelId: string,
  family: RerankFamily,
  body: Record<string, unknown>,
  awsError: ErrorReply,
  malformed: (detail: string) => MockReply,
): MockReply {
  const refused = invalid(family, body, malformed);
  if (refused) return refused;
  const query = body.query as string;
  const documents = body.documents as string[];
  const marker = ctx.options.poisonMarker;
  if (marker && [query, ...documents].some((t) => t.includes(marker)))
    return awsError(
      400,
      'ValidationException',
      'The input contains content that the model cannot process.',
    );

  // About 4 characters a token, as for the embedding models.
  const tokens = [query, ...documents].reduce((n, t) => n + Math.ceil(Array.from(t).length / 4), 0);
  const turn = takeBedrockTurn(ctx, modelId, tokens);
  if ('refused' in turn) return turn.refused;

  const ranked = documents
    .map((d, index) => ({ index, relevance_score: overlapScore(query, d) }))
    .sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index)
    .slice(0, typeof body.top_n === 'number' ? body.top_n : documents.length);
  const headers = { 'x-amzn-requestid': randomUUID() };
  if (family === 'amazon-rerank') return { status: 200, headers, body: { results: ranked } };
  return {
    status: 200,
    headers,
    body: {
      id: randomUUID(),
      results: ranked,
      meta: { api_version: { version: '2' }, billed_units: { search_units: 1 } },
    },
  };
}
