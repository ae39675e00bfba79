// What each supported model can do, in one table: the dimensions it produces and may be asked to
// reduce to, how many inputs and tokens one request may carry, and the unit a chunk is measured in.
// Config is checked against this table when a pipeline is applied; requests are sized by it.
import {
  ConfigError,
  type EmbeddingConfig,
  type OpenAIEmbeddingConfig,
} from '../config/pipeline.js';
import { LOCAL_MODELS, maxChunkCharacters } from './local-models.js';

export type SizeUnit = 'tokens' | 'characters';
export type ModelFamily =
  | 'offline'
  | 'openai'
  | 'titan-v2'
  | 'titan-v1'
  | 'cohere-v3'
  | 'cohere-v4'
  | 'gemini'
  | 'voyage'
  | 'local';

export type DimensionRule =
  | { kind: 'fixed' }
  /** Any size from min up to the native one (OpenAI's `dimensions`). */
  | { kind: 'any'; min: number }
  /** One of a list (Titan v2, Cohere v4). */
  | { kind: 'choice'; values: readonly number[] };

export interface ModelFacts {
  provider: EmbeddingConfig['provider'];
  model: string;
  family: ModelFamily;
  nativeDimensions: number;
  dimensions: DimensionRule;
  maxInputsPerRequest: number;
  maxTokensPerInput: number;
  maxTokensPerRequest: number;
  /** cl100k tokens where the model's tokenizer is public; characters (code points) otherwise. */
  unit: SizeUnit;
  /** The longest input in the model's unit: what a chunk may not exceed. */
  maxInputSize: number;
}

// Bedrock documents Cohere's limits in characters and says "1 token is about 4 characters"; for
// models documented in tokens only, that ratio turns the token limit into a character limit.
const CHARS_PER_TOKEN = 4;

const openai = (model: string, native: number, dimensions: DimensionRule): ModelFacts => ({
  provider: 'openai',
  model,
  family: 'openai',
  nativeDimensions: native,
  dimensions,
  maxInputsPerRequest: 2048,
  maxTokensPerInput: 8191,
  maxTokensPerRequest: 300_000,
  unit: 'tokens',
  maxInputSize: 8191,
});

// Voyage AI: 32,000 tokens per input, at most 1,000 inputs per request, and a per-request token
// total that depends on the model. Voyage's tokenizer is not cl100k, so chunks are measured in
// characters, at most as many as the model takes tokens: ordinary text stays well under one token
// a character (English runs four to five characters a token), and a chunk that still counts too
// many is refused by Voyage (truncation is always off) and dead-lettered, never cut. Budgets are
// kept by the usual estimate, corrected by what Voyage reports in usage.total_tokens.
const voyage = (model: string, maxTokensPerRequest: number): ModelFacts => ({
  provider: 'voyage',
  model,
  family: 'voyage',
  nativeDimensions: 1024,
  dimensions: { kind: 'choice', values: [256, 512, 1024, 2048] },
  maxInputsPerRequest: 1000,
  maxTokensPerInput: 32_000,
  maxTokensPerRequest,
  unit: 'characters',
  maxInputSize: 32_000,
});

const MODELS: readonly ModelFacts[] = [
  {
    provider: 'offline',
    model: 'feature-hash-v1',
    family: 'offline',
    nativeDimensions: 256,
    dimensions: { kind: 'any', min: 8 },
    maxInputsPerRequest: 256,
    maxTokensPerInput: Infinity,
    maxTokensPerRequest: Infinity,
    unit: 'characters',
    maxInputSize: Infinity,
  },
  openai('text-embedding-3-small', 1536, { kind: 'any', min: 1 }),
  openai('text-embedding-3-large', 3072, { kind: 'any', min: 1 }),
  openai('text-embedding-ada-002', 1536, { kind: 'fixed' }),
  {
    provider: 'bedrock',
    model: 'amazon.titan-embed-text-v2:0',
    family: 'titan-v2',
    nativeDimensions: 1024,
    dimensions: { kind: 'choice', values: [256, 512, 1024] },
    // Titan takes one text per call; 50,000 characters, but 8,192 tokens is the tighter limit.
    maxInputsPerRequest: 1,
    maxTokensPerInput: 8192,
    maxTokensPerRequest: 8192,
    unit: 'characters',
    maxInputSize: 8192 * CHARS_PER_TOKEN,
  },
  {
    provider: 'bedrock',
    model: 'amazon.titan-embed-text-v1',
    family: 'titan-v1',
    nativeDimensions: 1536,
    dimensions: { kind: 'fixed' },
    maxInputsPerRequest: 1,
    maxTokensPerInput: 8192,
    maxTokensPerRequest: 8192,
    unit: 'characters',
    maxInputSize: 8192 * CHARS_PER_TOKEN,
  },
  ...['cohere.embed-english-v3', 'cohere.embed-multilingual-v3'].map((model): ModelFacts => ({
    provider: 'bedrock',
    model,
    family: 'cohere-v3',
    nativeDimensions: 1024,
    dimensions: { kind: 'fixed' },
    maxInputsPerRequest: 96,
    maxTokensPerInput: 512,
    maxTokensPerRequest: 96 * 512,
    unit: 'characters',
    maxInputSize: 2048,
  })),
  {
    provider: 'bedrock',
    model: 'cohere.embed-v4:0',
    family: 'cohere-v4',
    nativeDimensions: 1536,
    dimensions: { kind: 'choice', values: [256, 512, 1024, 1536] },
    // ~128k tokens per input; no per-request limit is documented, so a request stays within one
    // input's.
    maxInputsPerRequest: 96,
    maxTokensPerInput: 128_000,
    maxTokensPerRequest: 128_000,
    unit: 'characters',
    maxInputSize: 100_000,
  },
  // Gemini API. text-embedding-004 was shut down on 14 January 2026, so only its successor is here.
  {
    provider: 'gemini',
    model: 'gemini-embedding-001',
    family: 'gemini',
    nativeDimensions: 3072,
    // 128 to 3072 (outputDimensionality); Google recommends 768, 1536 or 3072.
    dimensions: { kind: 'any', min: 128 },
    // batchEmbedContents takes at most 100 requests. No per-request token limit is documented, so a
    // request is bounded by 100 inputs of the per-input limit.
    maxInputsPerRequest: 100,
    maxTokensPerInput: 2048,
    maxTokensPerRequest: 100 * 2048,
    // Google's tokenizer is not public; its docs put a token at about 4 characters.
    unit: 'characters',
    maxInputSize: 2048 * CHARS_PER_TOKEN,
  },
  voyage('voyage-3.5', 320_000),
  voyage('voyage-3.5-lite', 1_000_000),
  voyage('voyage-3-large', 120_000),
  voyage('voyage-code-3', 120_000),
  voyage('voyage-4', 320_000),
  voyage('voyage-4-lite', 1_000_000),
  voyage('voyage-4-large', 120_000),
  // Models run in the worker (src/providers/local-models.ts). Their tokenizer is the model's own
  // (WordPiece), so chunks are measured in characters, at most as many as surely fit; an input that
  // still counts more tokens is refused by the provider, never cut. The batch size is the provider's
  // own choice: one inference over the batch, padded to its longest text.
  ...LOCAL_MODELS.map((m): ModelFacts => ({
    provider: 'local',
    model: m.name,
    family: 'local',
    nativeDimensions: m.dimensions,
    dimensions: { kind: 'fixed' },
    maxInputsPerRequest: 32,
    maxTokensPerInput: m.maxTokens,
    maxTokensPerRequest: 32 * m.maxTokens,
    unit: 'characters',
    maxInputSize: maxChunkCharacters(m),
  })),
];

export const KNOWN_MODELS: ReadonlyMap<string, readonly string[]> = new Map(
  (['offline', 'openai', 'bedrock', 'gemini', 'voyage', 'local'] as const).map((p) => [
    p,
    MODELS.filter((m) => m.provider === p).map((m) => m.model),
  ]),
);

/**
 * Gemini's models may be named with their resource prefix ("models/gemini-embedding-001").
 * Bedrock accepts cross-region inference profiles ("us.cohere.embed-v4:0") and ARNs for the same
 * models; the facts are the base model's. cohere.embed-v4 is documented both with and without ":0".
 */
export function baseModelId(provider: EmbeddingConfig['provider'], model: string): string {
  // The Gemini API names models as resources (models/gemini-embedding-001); the SDK takes both.
  if (provider === 'gemini') return model.replace(/^models\//, '');
  if (provider !== 'bedrock') return model;
  const id = model
    .slice(model.lastIndexOf('/') + 1)
    .replace(/^(us|eu|apac|ap|ca|jp|au|us-gov|global)\./, '');
  return id === 'cohere.embed-v4' ? 'cohere.embed-v4:0' : id;
}

/**
 * Tokens of an input a compatible server spends besides the chunk and its prefix: the start and end
 * tokens BERT- and XLM-R-style models add, and a word-start marker (decision 26).
 */
export const RESERVED_TOKENS = 4;

/** Whether embedsync knows the model: its facts come from the table above, not the config. */
export function isKnownModel(embedding: EmbeddingConfig): boolean {
  const id = baseModelId(embedding.provider, embedding.model);
  return MODELS.some((m) => m.provider === embedding.provider && m.model === id);
}

/**
 * The facts for a pipeline's model. A model the table does not know is one of an OpenAI-compatible
 * server (checkEmbeddingModel makes sure there is one): its dimensions are the pipeline's (checked
 * by a probe at apply, src/providers/probe.ts), and its input limit and tokenizer are what the
 * config declares. Chunks are measured in characters unless it declares cl100k: such servers run
 * models whose tokenizer we do not have, and none of those makes more tokens than characters.
 */
export function modelFacts(embedding: EmbeddingConfig): ModelFacts {
  const id = baseModelId(embedding.provider, embedding.model);
  const known = MODELS.find((m) => m.provider === embedding.provider && m.model === id);
  if (known) return known;
  if (embedding.provider === 'openai') {
    const unit: SizeUnit = embedding.tokenizer === 'cl100k' ? 'tokens' : 'characters';
    const limit = embedding.maxInputTokens;
    // The document prefix is sent with every chunk, so it takes its share of the limit: its code
    // points, or its UTF-8 bytes, which no cl100k count exceeds.
    const prefix = embedding.documentPrefix ?? '';
    const prefixSize =
      unit === 'tokens' ? Buffer.byteLength(prefix, 'utf8') : Array.from(prefix).length;
    return {
      provider: 'openai',
      model: embedding.model,
      family: 'openai',
      nativeDimensions: embedding.dimensions,
      dimensions: { kind: 'fixed' },
      maxInputsPerRequest: embedding.maxInputsPerRequest ?? 32,
      maxTokensPerInput: limit ?? Infinity,
      maxTokensPerRequest: Infinity,
      unit,
      maxInputSize: limit === undefined ? Infinity : limit - prefixSize - RESERVED_TOKENS,
    };
  }
  const names = KNOWN_MODELS.get(embedding.provider)?.join(', ') ?? '';
  throw new ConfigError(
    'embedding.model',
    `${embedding.provider} has no embedding model "${embedding.model}" that embedsync knows; known: ${names}`,
  );
}

/** The dimensions a model can produce, in words, for error messages. */
function describeDimensions(f: ModelFacts): string {
  switch (f.dimensions.kind) {
    case 'fixed':
      return `only ${f.nativeDimensions}`;
    case 'any':
      return `${f.dimensions.min} to ${f.nativeDimensions}`;
    case 'choice':
      return f.dimensions.values.join(', ');
  }
}

export function canProduce(f: ModelFacts, dimensions: number): boolean {
  switch (f.dimensions.kind) {
    case 'fixed':
      return dimensions === f.nativeDimensions;
    case 'any':
      return dimensions >= f.dimensions.min && dimensions <= f.nativeDimensions;
    case 'choice':
      return f.dimensions.values.includes(dimensions);
  }
}

/** Whether to ask the model for fewer dimensions than it produces by default. */
export function reducesDimensions(f: ModelFacts, dimensions: number): boolean {
  return f.dimensions.kind !== 'fixed' && dimensions !== f.nativeDimensions;
}

/**
 * Apply-time check of a pipeline against its model: a vector table whose dimensions the model
 * cannot produce, or chunks longer than the model takes, would only fail later, row by row.
 */
export function checkEmbeddingModel(
  config: { embedding: EmbeddingConfig; chunking: { size: number } },
  /** OPENAI_BASE_URL, the server of OpenAI pipelines that name none. */
  openaiBaseURL?: string,
): ModelFacts {
  const { embedding } = config;
  if (embedding.provider === 'openai') checkCompatibleModel(embedding, openaiBaseURL);
  const f = modelFacts(embedding);
  if (!canProduce(f, embedding.dimensions)) {
    throw new ConfigError(
      'embedding.dimensions',
      `is ${embedding.dimensions}, but ${embedding.model} produces ${describeDimensions(f)} dimensions`,
    );
  }
  if (config.chunking.size > f.maxInputSize) {
    const declared =
      embedding.provider === 'openai' && embedding.maxInputTokens !== undefined
        ? ` (maxInputTokens ${embedding.maxInputTokens}, less the documentPrefix and ${RESERVED_TOKENS} tokens the server adds)`
        : '';
    throw new ConfigError(
      'chunking.size',
      `is ${config.chunking.size} ${f.unit}, but ${embedding.model} takes at most ${f.maxInputSize} ${f.unit} per input${declared}`,
    );
  }
  if (
    embedding.provider === 'bedrock' &&
    embedding.normalize !== undefined &&
    f.family !== 'titan-v2'
  ) {
    throw new ConfigError(
      'embedding.normalize',
      `applies to amazon.titan-embed-text-v2:0 only, not ${embedding.model}`,
    );
  }
  return f;
}

/**
 * A model embedsync does not know needs a server that knows it: the pipeline's baseURL or
 * OPENAI_BASE_URL (OpenAI's own API serves only the models in the table). What the config declares
 * of a model's limit and tokenizer is for such models only: a known model's are in the table.
 */
function checkCompatibleModel(embedding: OpenAIEmbeddingConfig, openaiBaseURL?: string): void {
  if (isKnownModel(embedding)) {
    for (const field of ['maxInputTokens', 'tokenizer'] as const) {
      if (embedding[field] !== undefined)
        throw new ConfigError(
          `embedding.${field}`,
          `embedsync knows ${embedding.model}'s input limit and tokenizer; leave out ${field}`,
        );
    }
    return;
  }
  if (embedding.baseURL || openaiBaseURL) return;
  const names = KNOWN_MODELS.get('openai')?.join(', ') ?? '';
  throw new ConfigError(
    'embedding.model',
    `openai has no embedding model "${embedding.model}" that embedsync knows; known: ${names} (other models need an OpenAI-compatible server: embedding.baseURL, or OPENAI_BASE_URL in the environment)`,
  );
}
