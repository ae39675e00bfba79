// The declared shape of a pipeline, validated once at the edge (the config file) and stored in the
// catalog.
import { z } from 'zod';
import { createHash } from 'node:crypto';

export const PIPELINE_NAME = /^[a-z][a-z0-9_]{0,39}$/;

const DURATION = /^([1-9][0-9]*)(s|m|h|d)$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
/** A schedule's interval is at least a minute: a check of a whole table is no busy loop. */
export const MIN_UPKEEP_SECONDS = 60;

/** '6h' → 21600; a number is seconds already. Validated by upkeepInterval. */
export function durationSeconds(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = DURATION.exec(value);
  if (!m) throw new ConfigError('', `not a duration: ${value}`);
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
}

const upkeepInterval = z
  .union([
    z.number().int(),
    z.string().regex(DURATION, 'must be a duration such as 30m, 6h or 7d, or whole seconds'),
  ])
  // A string the regex refused is reported there; zod runs this refinement all the same.
  .refine(
    (v) => (typeof v === 'string' && !DURATION.test(v)) || durationSeconds(v) >= MIN_UPKEEP_SECONDS,
    {
      error: `must be at least ${MIN_UPKEEP_SECONDS} seconds (1m)`,
    },
  );

/** The full-text configuration a pipeline without `search.language` uses. */
export const DEFAULT_TEXT_SEARCH_LANGUAGE = 'english';
const TEXT_SEARCH_CONFIG = /^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/;

/** The text-search configuration a pipeline's full-text side uses. */
export const textSearchLanguage = (config: Pick<PipelineConfig, 'search'>): string =>
  config.search?.language ?? DEFAULT_TEXT_SEARCH_LANGUAGE;

const embedColumn = z.union([
  z.string().min(1),
  z
    .object({
      column: z.string().min(1),
      prefix: z.string().default(''),
      /**
       * Repeat this column (with its prefix) at the head of every chunk of the row, so each keeps
       * its context.
       */
      repeat: z.boolean().default(false),
    })
    .strict(),
]);

const offlineEmbedding = z
  .object({
    provider: z.literal('offline'),
    model: z.literal('feature-hash-v1').default('feature-hash-v1'),
    dimensions: z.number().int().min(8).max(4000).default(256),
  })
  .strict();

// Provider options. Secrets are never config: a key is named by the environment variable holding
// it. Which models exist and which dimensions they can produce is checked against
// src/providers/models.ts when the pipeline is applied.
const rateLimits = {
  /**
   * The account's request limit for this model: the worker paces the provider's task queue to it.
   */
  requestsPerMinute: z.number().int().min(1).optional(),
  /**
   * The account's token limit for this model: requests are sized so the paced queue stays under it.
   */
  tokensPerMinute: z.number().int().min(1).optional(),
};

const pricing = {
  /**
   * What the account pays per million input tokens, in US dollars, online and through a batch API;
   * default the list price (src/providers/prices.ts). Only estimates use it.
   */
  price: z
    .object({ online: z.number().min(0), batch: z.number().min(0).optional() })
    .strict()
    .optional(),
};

const openaiEmbedding = z
  .object({
    provider: z.literal('openai'),
    model: z.string().min(1),
    dimensions: z.number().int().min(1).max(16_000),
    /**
     * An OpenAI-compatible server (Ollama, vLLM, TEI, LM Studio); default OPENAI_BASE_URL or
     * OpenAI's.
     */
    baseURL: z.url().optional(),
    /** The environment variable holding the API key. */
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .default('OPENAI_API_KEY'),
    /**
     * How the server sends vectors. Unset: base64 (float32s, a quarter of float's bytes and far
     * less to format and parse), or float from a server that refuses base64. Either is stored alike.
     */
    encodingFormat: z.enum(['float', 'base64']).optional(),
    /**
     * For a model of a compatible server that embedsync does not know: most texts one request may
     * carry.
     */
    maxInputsPerRequest: z.number().int().min(1).max(2048).optional(),
    /**
     * For a model embedsync does not know: the most tokens one input may hold, as the server counts
     * them (its max_input_length, max_model_len or num_ctx). Chunks are kept within it.
     */
    maxInputTokens: z.number().int().min(16).max(1_000_000).optional(),
    /**
     * How chunks of such a model are measured against chunking.size and maxInputTokens: characters
     * (default; no subword tokenizer makes more tokens than characters, so a chunk never runs over)
     * or cl100k (exact for models with OpenAI's tokenizer, an estimate for others).
     */
    tokenizer: z.enum(['characters', 'cl100k']).optional(),
    /**
     * Put before every search query ("query: " for e5, "Represent this sentence for searching
     * relevant passages: " for bge). Part of what a vector is: changing it re-embeds.
     */
    queryPrefix: z.string().max(200).optional(),
    /** Put before every document chunk ("passage: " for e5). Changing it re-embeds. */
    documentPrefix: z.string().max(200).optional(),
    ...rateLimits,
    ...pricing,
  })
  .strict();

const bedrockEmbedding = z
  .object({
    provider: z.literal('bedrock'),
    /**
     * A model id, inference profile id or ARN: amazon.titan-embed-text-v2:0,
     * cohere.embed-english-v3, …
     */
    model: z.string().min(1),
    dimensions: z.number().int().min(1).max(16_000),
    /** Default AWS_REGION, then the AWS SDK's own region chain. */
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region such as us-east-1')
      .optional(),
    /** Titan Text Embeddings v2 only: unit-length vectors (default true). */
    normalize: z.boolean().optional(),
    /** A VPC endpoint or a test server instead of the regional Bedrock runtime endpoint. */
    endpoint: z.url().optional(),
    ...rateLimits,
    ...pricing,
  })
  .strict();

// Google's Gemini API (the Developer API, keyed; not Vertex AI) through @google/genai.
const geminiEmbedding = z
  .object({
    provider: z.literal('gemini'),
    /** gemini-embedding-001 (also written models/gemini-embedding-001). */
    model: z.string().min(1),
    dimensions: z.number().int().min(1).max(16_000),
    /**
     * The environment variable holding the API key; default GOOGLE_API_KEY or GEMINI_API_KEY, the
     * names Google's SDK reads (GOOGLE_API_KEY first when both are set, as the SDK does).
     */
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    /**
     * A proxy or test server instead of https://generativelanguage.googleapis.com; default
     * GOOGLE_GEMINI_BASE_URL.
     */
    baseURL: z.url().optional(),
    ...rateLimits,
    ...pricing,
  })
  .strict();

// Voyage AI. No truncation option: every request sends `truncation: false`, so an input longer than
// the model takes is an error (isolated to its row), never silently cut; chunking keeps inputs
// within the model's limit. Vectors are always float (output_dtype): pgvector stores floats.
const voyageEmbedding = z
  .object({
    provider: z.literal('voyage'),
    /** voyage-3.5, voyage-3.5-lite, voyage-3-large, voyage-code-3, … (src/providers/models.ts). */
    model: z.string().min(1),
    /** 1024 by default; 256, 512 and 2048 are sent as output_dimension. */
    dimensions: z.number().int().min(1).max(16_000),
    /** A Voyage-compatible server or a test server; default VOYAGE_BASE_URL or Voyage's. */
    baseURL: z.url().optional(),
    /** The environment variable holding the API key. */
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .default('VOYAGE_API_KEY'),
    ...rateLimits,
    ...pricing,
  })
  .strict();

// A sentence-embedding model run in the worker's own process (src/providers/local.ts), from files
// fetched once by `embedsync model fetch`; no network when it runs. Which models exist, their
// dimensions and input limits are in src/providers/local-models.ts, checked at apply.
const localEmbedding = z
  .object({
    provider: z.literal('local'),
    /** all-MiniLM-L6-v2, … (src/providers/local-models.ts). */
    model: z.string().min(1),
    dimensions: z.number().int().min(1).max(16_000),
    /**
     * The directory holding the models, one directory each; default EMBEDSYNC_LOCAL_MODELS or
     * <EMBEDSYNC_HOME>/models, where `embedsync model fetch` puts them.
     */
    modelDir: z.string().min(1).optional(),
  })
  .strict();

// Where a pipeline's changes are delivered once written (docs/architecture.md, decision 23).
// Operational: they decide where changes go, not what a vector is, so they are outside the
// embedding fingerprint and changing them needs no re-embed.
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
/** Source columns whose current values a delivery carries; none by default (keys only). */
const sinkColumns = z.array(z.string().min(1)).min(1, 'must not be empty').optional();

export const sinkSchema = z.union([
  z
    .object({
      /** A Postgres channel for pg_notify: lower case letters, digits and _, at most 63. */
      notify: z.string().regex(IDENTIFIER, 'must be a channel name: a-z, 0-9 and _ (at most 63)'),
    })
    .strict(),
  z
    .object({
      webhook: z
        .object({
          url: z.url({ protocol: /^https?$/ }).refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), {
            error: 'must not carry credentials: the body is signed with secretEnv instead',
          }),
          /** The environment variable holding the HMAC secret; never the secret itself. */
          secretEnv: z.string().regex(ENV_NAME, 'must be an environment variable name'),
          columns: sinkColumns,
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      workflow: z
        .object({
          /** The user's workflow type, signalled-with-start once per delivery. */
          type: z.string().min(1),
          taskQueue: z.string().min(1),
          columns: sinkColumns,
        })
        .strict(),
    })
    .strict(),
]);
export type SinkConfig = z.infer<typeof sinkSchema>;

// A second search stage (docs/architecture.md, decision 28): the nearest candidates are reordered
// by a rerank model before the limit is applied: a provider's (Bedrock), or a cross-encoder run in
// the searching process (local, decision 30). A search setting, outside the embedding fingerprint:
// changing it never re-embeds.
/** Bedrock takes at most 1,000 documents in one rerank request. */
export const MAX_RERANK_CANDIDATES = 1000;
/**
 * A local cross-encoder scores every candidate on the searching machine's CPU, some 10 ms each on
 * one core of a small machine: 200 is a couple of seconds, past what a search should wait.
 */
export const MAX_LOCAL_RERANK_CANDIDATES = 200;
export const DEFAULT_RERANK_CANDIDATES = 50;
const candidates = (most: number) =>
  z.number().int().min(1).max(most).default(DEFAULT_RERANK_CANDIDATES);
const rerankSchema = z.discriminatedUnion('provider', [
  z
    .object({
      provider: z.literal('bedrock'),
      /** cohere.rerank-v3-5:0 or amazon.rerank-v1:0 (an ARN of either too). */
      model: z.string().min(1),
      /** Default AWS_REGION, then the AWS SDK's own region chain. */
      region: z
        .string()
        .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region such as us-west-2')
        .optional(),
      /** A VPC endpoint or a test server instead of the regional Bedrock runtime endpoint. */
      endpoint: z.url().optional(),
      /** How many of the nearest results the model reorders (at least the search's limit). */
      candidates: candidates(MAX_RERANK_CANDIDATES),
    })
    .strict(),
  z
    .object({
      provider: z.literal('local'),
      /** ms-marco-MiniLM-L-12-v2 (src/providers/local-models.ts), fetched by `embedsync model fetch`. */
      model: z.string().min(1),
      /**
       * The directory holding the models, one directory each; default EMBEDSYNC_LOCAL_MODELS or
       * <EMBEDSYNC_HOME>/models, where `embedsync model fetch` puts them.
       */
      modelDir: z.string().min(1).optional(),
      /** How many of the nearest results the model scores (at least the search's limit). */
      candidates: candidates(MAX_LOCAL_RERANK_CANDIDATES),
    })
    .strict(),
]);

export const pipelineSchema = z
  .object({
    name: z
      .string()
      .regex(
        PIPELINE_NAME,
        'must be lower case letters, digits and _, starting with a letter (at most 40)',
      ),
    source: z
      .object({
        table: z.string().min(1),
        /** Defaults to the table's primary key; when given it must be that key. */
        primaryKey: z.array(z.string().min(1)).min(1).optional(),
        /**
         * How changes are captured: trigger (default), statement triggers writing the outbox in the
         * user's transaction; logical, read from the WAL through a replication slot, which costs
         * the user's writes nearly nothing (decision 29; needs wal_level = logical).
         */
        capture: z.enum(['trigger', 'logical']).optional(),
      })
      .strict(),
    embed: z
      .object({
        columns: z.array(embedColumn).min(1, 'must not be empty'),
        /** Placed between the columns' texts. */
        separator: z.string().default('\n'),
      })
      .strict(),
    metadata: z.array(z.string().min(1)).default([]),
    embedding: z.discriminatedUnion('provider', [
      offlineEmbedding,
      openaiEmbedding,
      bedrockEmbedding,
      geminiEmbedding,
      voyageEmbedding,
      localEmbedding,
    ]),
    chunking: z
      .object({
        /**
         * Longest chunk, in the model's unit: cl100k tokens for OpenAI's models, characters
         * otherwise.
         */
        size: z.number().int().min(64).max(100_000).default(2000),
        /** How much (in the same unit) each chunk repeats from the end of the one before. */
        overlap: z.number().int().min(0).default(200),
      })
      .strict()
      .refine((c) => c.overlap < c.size / 2, {
        error: 'overlap must be less than half of size',
        path: ['overlap'],
      })
      .default({ size: 2000, overlap: 200 }),
    /** Where the vectors go; defaults to <source schema>.<name>_embeddings. */
    vectorTable: z.string().min(1).optional(),
    /** halfvec halves storage and allows HNSW up to 4,000 dimensions (vector: 2,000). */
    vectorType: z.enum(['vector', 'halfvec']).default('vector'),
    /**
     * Write each row's vector into a column of the source row itself instead of a vector table. One
     * chunk per row.
     */
    destination: z
      .object({
        /** A vector(d) or halfvec(d) column of the source table; added by apply when missing. */
        column: z.string().min(1),
        /**
         * Cut a text longer than the model takes to what it takes, and record that it was cut;
         * otherwise such a row is a dead letter.
         */
        truncate: z.boolean().default(false),
        /** Create an HNSW cosine index on the column (concurrently). */
        index: z.boolean().default(false),
      })
      .strict()
      .optional(),
    /**
     * keep: search serves a row's old vector until the new one is written. clear: a row whose
     * embedded text changed is invisible to search from the commit of that change until its new
     * vector is written.
     */
    onContentChange: z.enum(['keep', 'clear']).default('keep'),
    /**
     * Most source keys one sync workflow handles; bounded so keys in history stay far below payload
     * limits.
     */
    batchSize: z.number().int().min(1).max(2000).default(200),
    /** The model `search --rerank` reorders the nearest results with (decisions 28 and 30). */
    rerank: rerankSchema.optional(),
    /** Where each written change is delivered: notify, webhook, workflow (decision 23). */
    sinks: z.array(sinkSchema).max(16).default([]),
    /** How whole-table work (backfill) runs by default; `--batch` / `--no-batch` override it. */
    backfill: z
      .object({
        /**
         * batch: through OpenAI's Batch API, at half the online price, done within 24 hours
         * (docs/architecture.md, decision 17).
         */
        mode: z.enum(['online', 'batch']).default('online'),
        /** The account's enqueued-token limit for the model (OpenAI's batch queue limit). */
        enqueuedTokens: z.number().int().min(1).optional(),
        /** Seconds between polls of the provider's batches. */
        pollSeconds: z.number().int().min(1).max(3600).optional(),
      })
      .strict()
      .optional(),
    /**
     * Upkeep run by Temporal Schedules that apply creates (docs/architecture.md, decision 24): a
     * periodic verify, re-queueing what it finds if asked, and a periodic concurrent reindex.
     * Operational: changing it never re-embeds.
     */
    /**
     * Full-text search over the chunks, for hybrid search (docs/architecture.md, decision 27).
     * Operational: changing it rebuilds the full-text index, never re-embeds.
     */
    search: z
      .object({
        /**
         * The Postgres text-search configuration (pg_ts_config): english, simple, german, …;
         * checked against the database at apply.
         */
        language: z
          .string()
          .regex(
            TEXT_SEARCH_CONFIG,
            'must name a text-search configuration such as english or simple (optionally schema.name)',
          )
          .default(DEFAULT_TEXT_SEARCH_LANGUAGE),
      })
      .strict()
      .optional(),
    upkeep: z
      .object({
        /** How often verify runs: '6h', '30m', '7d', or seconds; absent: never. */
        verifyEvery: upkeepInterval.optional(),
        /** Queue what the scheduled verify finds for the sync to repair. */
        requeue: z.boolean().default(false),
        /** How often the HNSW index is rebuilt concurrently; absent: never. */
        reindexEvery: upkeepInterval.optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.upkeep?.requeue && p.upkeep.verifyEvery === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['upkeep', 'requeue'],
        message: `pipeline ${p.name} requeues what a scheduled verify finds, but has no upkeep.verifyEvery`,
      });
    }
    if (
      p.upkeep?.reindexEvery !== undefined &&
      p.destination !== undefined &&
      !p.destination.index
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['upkeep', 'reindexEvery'],
        message: `pipeline ${p.name} writes into column ${p.destination.column} without an index of embedsync's: set destination.index: true, or leave out reindexEvery`,
      });
    }
    if (p.backfill?.mode === 'batch' && p.embedding.provider !== 'openai') {
      ctx.addIssue({
        code: 'custom',
        path: ['backfill', 'mode'],
        message: `pipeline ${p.name} embeds with ${p.embedding.provider}: batch mode needs OpenAI's Batch API (embedding.provider: openai)`,
      });
    }
    // The repeated context is the head of the document, so only leading columns can be repeated.
    const repeats = p.embed.columns.map((c) => typeof c !== 'string' && c.repeat);
    const firstPlain = repeats.indexOf(false);
    repeats.forEach((r, i) => {
      if (r && firstPlain !== -1 && i > firstPlain) {
        ctx.addIssue({
          code: 'custom',
          path: ['embed', 'columns', i, 'repeat'],
          message: 'columns repeated on every chunk must come before the others',
        });
      }
    });
    if (p.destination) {
      if (p.vectorTable !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['vectorTable'],
          message: `pipeline ${p.name} writes its vectors into the column ${p.destination.column}: leave out vectorTable`,
        });
      }
      if (p.search !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['search'],
          message: `pipeline ${p.name} writes its vectors into the column ${p.destination.column} and keeps no chunk text, so it has no full-text side: leave out search`,
        });
      }
      if (p.metadata.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['metadata'],
          message: `pipeline ${p.name} writes its vectors into the source row, whose columns are its metadata: leave out metadata`,
        });
      }
      if (
        [...p.embed.columns.map((c) => (typeof c === 'string' ? c : c.column))].includes(
          p.destination.column,
        )
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['destination', 'column'],
          message: `${p.destination.column} is embedded by pipeline ${p.name}: the destination must be another column`,
        });
      }
    }
    if (p.vectorType === 'vector' && p.embedding.dimensions > 2000) {
      ctx.addIssue({
        code: 'custom',
        path: ['vectorType'],
        message: `HNSW indexes vector up to 2,000 dimensions; use "halfvec" for ${p.embedding.dimensions}`,
      });
    }
  });

/**
 * A pipeline that embeds nothing: every change of its table goes to its sinks at once, with no
 * vector written (docs/architecture.md, decision 23). Told apart by having neither `embed` nor
 * `embedding`.
 */
export const eventsPipelineSchema = z
  .object({
    name: pipelineSchema.shape.name,
    source: pipelineSchema.shape.source,
    sinks: z
      .array(sinkSchema)
      .min(1, 'a pipeline with no embedding delivers change events: it needs at least one sink')
      .max(16),
    batchSize: pipelineSchema.shape.batchSize,
  })
  .strict();

/**
 * Whether a pipeline entry, as written, is events-only: it has sinks and names neither embed nor
 * embedding. One with none of them is read as a pipeline that embeds, whose fields it lacks.
 */
export const isEventsOnlyInput = (raw: unknown): boolean =>
  typeof raw === 'object' &&
  raw !== null &&
  !Array.isArray(raw) &&
  'sinks' in raw &&
  !('embed' in raw) &&
  !('embedding' in raw);

// Each entry is read by the schema of its kind, so a mistake is reported against that schema's
// fields rather than as "matches neither".
const anyPipelineSchema = z.unknown().transform((raw, ctx): AnyPipelineConfig => {
  const parsed = isEventsOnlyInput(raw)
    ? eventsPipelineSchema.safeParse(raw)
    : pipelineSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues)
    ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

export const configFileSchema = z
  .object({ pipelines: z.array(anyPipelineSchema).min(1, 'must declare at least one pipeline') })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Map<string, number>();
    file.pipelines.forEach((p, i) => {
      const first = seen.get(p.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['pipelines', i, 'name'],
          message: `duplicate pipeline name "${p.name}" (also pipelines[${first}])`,
        });
      }
      seen.set(p.name, i);
    });
  });

export type PipelineConfig = z.infer<typeof pipelineSchema>;
export type EventsPipelineConfig = z.infer<typeof eventsPipelineSchema> & {
  embed?: never;
  embedding?: never;
};
/** A pipeline as a file declares it: one that embeds, or one that only delivers change events. */
export type AnyPipelineConfig = PipelineConfig | EventsPipelineConfig;

/** Whether a parsed (or stored) config embeds nothing and only delivers change events. */
export const isEventsOnly = (config: AnyPipelineConfig): config is EventsPipelineConfig =>
  config.embedding === undefined;
export type EmbeddingConfig = PipelineConfig['embedding'];
export type OpenAIEmbeddingConfig = Extract<EmbeddingConfig, { provider: 'openai' }>;
export type BedrockEmbeddingConfig = Extract<EmbeddingConfig, { provider: 'bedrock' }>;
export type GeminiEmbeddingConfig = Extract<EmbeddingConfig, { provider: 'gemini' }>;
export type VoyageEmbeddingConfig = Extract<EmbeddingConfig, { provider: 'voyage' }>;
export type RerankConfig = NonNullable<PipelineConfig['rerank']>;
export type LocalRerankConfig = Extract<RerankConfig, { provider: 'local' }>;
export type LocalEmbeddingConfig = Extract<EmbeddingConfig, { provider: 'local' }>;
export type PipelineInput = z.input<typeof pipelineSchema>;
export type Destination = NonNullable<PipelineConfig['destination']>;

/** The source column a pipeline writes its vectors into, or undefined for a vector table. */
export function destinationColumn(config: Pick<PipelineConfig, 'destination'>): string | undefined {
  return config.destination?.column;
}
export interface EmbedColumn {
  column: string;
  prefix: string;
  repeat: boolean;
}

export function embedColumns(config: PipelineConfig): EmbedColumn[] {
  return config.embed.columns.map((c) =>
    typeof c === 'string' ? { column: c, prefix: '', repeat: false } : c,
  );
}

/**
 * The settings that decide what a vector is. Two configs with the same fingerprint give the same
 * vectors.
 */
export function embeddingFingerprint(config: PipelineConfig): string {
  const relevant = {
    // `repeat` only when set, so pipelines that never used it keep their fingerprints.
    columns: embedColumns(config).map(({ repeat, ...c }) => (repeat ? { ...c, repeat } : c)),
    separator: config.embed.separator,
    embedding: vectorDefining(config.embedding),
    chunking: config.chunking,
    vectorType: config.vectorType,
  };
  return createHash('sha256').update(canonicalJson(relevant)).digest('hex').slice(0, 16);
}

/**
 * What decides the vector of one text: provider, model, dimensions, normalisation, a compatible
 * server, and the input type it is sent as. Chunking and columns are left out: they decide which
 * texts there are, not a text's vector. Two texts equal under equal settings have equal vectors
 * (src/texts/once.ts).
 */
export function vectorSettings(embedding: EmbeddingConfig, inputType = 'document'): string {
  const settings = Object.fromEntries(
    Object.entries(vectorDefining(embedding)).filter(([key]) => !CHUNK_DEFINING.has(key)),
  );
  return canonicalJson({ ...settings, inputType });
}

// Options that decide how a document is cut into texts, not a text's vector: they stay in the
// embedding fingerprint (a new limit or tokenizer makes other chunks, so it re-embeds) but out of
// vectorSettings, so equal texts still share their vectors (decision 26).
const CHUNK_DEFINING = new Set(['maxInputTokens', 'tokenizer']);

// Options that change how vectors are fetched, not what they are: changing them needs no re-embed.
const OPERATIONAL_OPTIONS = new Set([
  'apiKeyEnv',
  'encodingFormat',
  'maxInputsPerRequest',
  'region',
  'endpoint',
  'requestsPerMinute',
  'tokensPerMinute',
  'price',
  'modelDir',
]);

function vectorDefining(embedding: EmbeddingConfig): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(embedding).filter(([key]) => !OPERATIONAL_OPTIONS.has(key)),
  );
}

/**
 * JSON with object keys sorted: the catalog's jsonb reorders keys, and equal configs must compare
 * equal.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) =>
            a < b ? -1 : a > b ? 1 : 0,
          ),
        )
      : v,
  );
}

/** Turns a zod path into the field name users see: pipelines[2].embed.columns. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, part) =>
      typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part),
    '',
  );
}

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(field ? `${field}: ${detail}` : detail);
    this.name = 'ConfigError';
  }
}

/** A pipeline file's pipelines, those that embed and those that only deliver change events. */
export function parsePipelineFile(raw: unknown): AnyPipelineConfig[] {
  const parsed = configFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(fieldPath(issue?.path ?? []), issue?.message ?? 'invalid');
  }
  return parsed.data.pipelines;
}

/** A pipeline file whose pipelines all embed (the demo's, the benchmarks', the tests'). */
export function parsePipelines(raw: unknown): PipelineConfig[] {
  return parsePipelineFile(raw).map((config, i) => {
    if (isEventsOnly(config))
      throw new ConfigError(`pipelines[${i}]`, `pipeline ${config.name} has no embedding`);
    return config;
  });
}

/** How a pipeline's changes are captured (decision 29). */
export type CaptureMode = 'trigger' | 'logical';

export const captureMode = (config: Pick<AnyPipelineConfig, 'source'>): CaptureMode =>
  config.source.capture ?? 'trigger';
