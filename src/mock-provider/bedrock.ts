// POST /model/{modelId}/invoke as Bedrock answers it for Titan Text Embeddings and Cohere Embed
// (and, through bedrock-rerank.ts, for Cohere Rerank and Amazon Rerank): SigV4 required, errors named in x-amzn-ErrorType (which the AWS SDK turns into exception
// classes).
import { randomUUID } from 'node:crypto';
import { featureHashEmbedding } from '../providers/offline.js';
import { answerRerank, rerankFamily } from './bedrock-rerank.js';
import { awsError, takeBedrockTurn } from './bedrock-errors.js';
import type { MockContext, MockReply } from './types.js';

type Family = 'titan-v2' | 'titan-v1' | 'cohere-v3' | 'cohere-v4';

function family(modelId: string): Family | undefined {
  const id = modelId.replace(/^(us|eu|apac|global)\./, '');
  if (id === 'amazon.titan-embed-text-v2:0') return 'titan-v2';
  if (id === 'amazon.titan-embed-text-v1') return 'titan-v1';
  if (id === 'cohere.embed-english-v3' || id === 'cohere.embed-multilingual-v3') return 'cohere-v3';
  if (id === 'cohere.embed-v4' || id === 'cohere.embed-v4:0') return 'cohere-v4';
  return undefined;
}

// "1 token is about 4 characters", as Bedrock's documentation for these models says.
const tokensOf = (text: string): number => Math.ceil(Array.from(text).length / 4);

const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=[A-Z0-9]+\/\d{8}\/([a-z0-9-]+)\/bedrock\/aws4_request, ?SignedHeaders=[a-z0-9:;-]+, ?Signature=[0-9a-f]{64}$/;

const malformed = (detail: string): MockReply =>
  awsError(
    400,
    'ValidationException',
    `Malformed input request: ${detail}, please reformat your input and try again.`,
  );

interface Parsed {
  texts: string[];
  dimensions: number;
  normalize: boolean;
  byType: boolean;
  error?: MockReply;
}

function parseBody(f: Family, body: Record<string, unknown>): Parsed {
  const allowed: Record<Family, string[]> = {
    'titan-v2': ['inputText', 'dimensions', 'normalize', 'embeddingTypes'],
    'titan-v1': ['inputText'],
    'cohere-v3': ['texts', 'input_type', 'truncate', 'embedding_types', 'images'],
    'cohere-v4': [
      'texts',
      'input_type',
      'truncate',
      'embedding_types',
      'output_dimension',
      'max_tokens',
      'images',
      'inputs',
    ],
  };
  const parsed: Parsed = { texts: [], dimensions: 0, normalize: true, byType: false };
  const extra = Object.keys(body).find((k) => !allowed[f].includes(k));
  if (extra) return { ...parsed, error: malformed(`extraneous key [${extra}] is not permitted`) };
  if (f === 'titan-v2' || f === 'titan-v1') {
    if (typeof body.inputText !== 'string' || body.inputText.length === 0)
      return { ...parsed, error: malformed('#/inputText: expected minLength: 1, actual: 0') };
    const dimensions =
      body.dimensions === undefined ? (f === 'titan-v2' ? 1024 : 1536) : Number(body.dimensions);
    if (f === 'titan-v2' && ![256, 512, 1024].includes(dimensions))
      return {
        ...parsed,
        error: malformed(`#/dimensions: ${String(body.dimensions)} is not a valid enum value`),
      };
    return {
      texts: [body.inputText],
      dimensions,
      normalize: body.normalize !== false,
      byType: Array.isArray(body.embeddingTypes),
    };
  }
  const texts = body.texts;
  if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string'))
    return { ...parsed, error: malformed('#/texts: expected type: JSONArray') };
  if (texts.length > 96)
    return {
      ...parsed,
      error: malformed(`#/texts: expected maximum item count: 96, found: ${texts.length}`),
    };
  if (
    !['search_document', 'search_query', 'classification', 'clustering'].includes(
      String(body.input_type),
    )
  ) {
    return {
      ...parsed,
      error: malformed(`#/input_type: ${String(body.input_type)} is not a valid enum value`),
    };
  }
  if (f === 'cohere-v3') {
    const long = texts.findIndex((t) => Array.from(t).length > 2048);
    if (long >= 0)
      return { ...parsed, error: malformed(`#/texts/${long}: expected maxLength: 2048`) };
  }
  const dimensions = f === 'cohere-v4' ? Number(body.output_dimension ?? 1536) : 1024;
  if (![256, 512, 1024, 1536].includes(dimensions) || (f === 'cohere-v3' && dimensions !== 1024)) {
    return {
      ...parsed,
      error: malformed(
        `#/output_dimension: ${String(body.output_dimension)} is not a valid enum value`,
      ),
    };
  }
  return { texts, dimensions, normalize: true, byType: Array.isArray(body.embedding_types) };
}

export function handleBedrock(
  ctx: MockContext,
  modelId: string,
  headers: Record<string, string | string[] | undefined>,
  body: unknown,
): MockReply {
  const auth = typeof headers.authorization === 'string' ? headers.authorization : '';
  const scope = SIGV4.exec(auth);
  const f = family(modelId);
  const reranker = rerankFamily(modelId);
  const request = (body ?? {}) as Record<string, unknown>;
  const parsed = f ? parseBody(f, request) : undefined;
  const reply = answer();
  const params = Object.fromEntries(
    Object.entries(request).filter(([k]) => !['inputText', 'texts', 'documents'].includes(k)),
  );
  const documents = Array.isArray(request.documents) ? request.documents.map(String) : [];
  ctx.record({
    api: 'bedrock',
    model: modelId,
    inputs: reranker ? documents : (parsed?.texts ?? []),
    status: reply.status,
    signed: scope !== null,
    region: scope?.[1],
    params,
  });
  return reply;

  function answer(): MockReply {
    if (!auth)
      return awsError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    if (!scope || typeof headers['x-amz-date'] !== 'string')
      return awsError(
        403,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    if (reranker) return answerRerank(ctx, modelId, reranker, request, awsError, malformed);
    if (!f || !parsed)
      return awsError(
        404,
        'ResourceNotFoundException',
        'Could not resolve the foundation model from the provided model identifier.',
      );
    if (parsed.error) return parsed.error;
    const counts = parsed.texts.map(tokensOf);
    const limit = f === 'cohere-v3' ? 512 : f === 'cohere-v4' ? 128_000 : 8192;
    const over = counts.findIndex((n) => n > limit);
    if (over >= 0)
      return awsError(
        400,
        'ValidationException',
        `400 Bad Request: Too many input tokens. Max input tokens: ${limit}, request input token count: ${counts[over]}`,
      );
    const marker = ctx.options.poisonMarker;
    if (marker && parsed.texts.some((t) => t.includes(marker)))
      return awsError(
        400,
        'ValidationException',
        'The input contains content that the model cannot process.',
      );

    const tokens = counts.reduce((a, b) => a + b, 0);
    const turn = takeBedrockTurn(ctx, modelId, tokens);
    if ('refused' in turn) return turn.refused;
    const { fault } = turn;

    const dimensions =
      fault?.kind === 'wrong-dimensions' ? parsed.dimensions - 1 : parsed.dimensions;
    const vectors = parsed.texts.map((t) =>
      featureHashEmbedding(t, dimensions).map((v) => (parsed.normalize ? v : v * 10)),
    );
    const replyHeaders = {
      'x-amzn-bedrock-input-token-count': String(tokens),
      'x-amzn-requestid': randomUUID(),
    };
    if (f === 'titan-v2' || f === 'titan-v1') {
      const embedding = vectors[0] ?? [];
      return {
        status: 200,
        headers: replyHeaders,
        body: {
          embedding,
          inputTextTokenCount: tokens,
          ...(parsed.byType ? { embeddingsByType: { float: embedding } } : {}),
        },
      };
    }
    return {
      status: 200,
      headers: replyHeaders,
      body: parsed.byType
        ? {
            id: randomUUID(),
            embeddings: { float: vectors },
            texts: parsed.texts,
            response_type: 'embeddings_by_type',
          }
        : {
            id: randomUUID(),
            embeddings: vectors,
            texts: parsed.texts,
            response_type: 'embeddings_floats',
          },
    };
  }
}

export { awsError } from './bedrock-errors.js';
