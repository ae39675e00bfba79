// The one place that reads process.env. Everything else receives a validated Env.
import path from 'node:path';
import { z } from 'zod';

/**
 * Defaults of the local stack that `npm run dev` and the tests start. docker-compose.yml mirrors
 * them.
 */
export const LOCAL_DEFAULTS = {
  postgresPort: 54329,
  postgresUser: 'postgres',
  database: 'embedsync',
  temporalPort: 7233,
  temporalUiPort: 8233,
  temporalNamespace: 'default',
  taskQueue: 'embedsync',
  home: '.embedsync',
} as const;

/** Where the /metrics endpoints listen unless told otherwise (README, "Watching it"). */
export const METRICS_DEFAULTS = {
  // Any interface: Prometheus scrapes from outside the container or pod. The endpoints carry counts
  // and pipeline and provider names, never row data or secrets.
  host: '0.0.0.0',
  // 9464 is the port Temporal's and OpenTelemetry's Prometheus exporters use by convention.
  workerPort: 9464,
  pollerPort: 9465,
} as const;

export const localDatabaseUrl = (database: string = LOCAL_DEFAULTS.database): string =>
  `postgres://${LOCAL_DEFAULTS.postgresUser}@127.0.0.1:${LOCAL_DEFAULTS.postgresPort}/${database}`;

/**
 * How long the vector of an embedded text stays on record for reuse (src/db/embedded-texts.ts):
 * longer than any batch lives (its activities time out after 10 minutes), so batches racing for a
 * text, or a re-claimed sync, always find it.
 */
export const DEFAULT_TEXT_RETENTION = '15min';

// An empty variable is unset (the default), not port 0 (off).
const port = z.preprocess(
  (v) => (v === '' ? undefined : v),
  z.coerce.number().int().min(0).max(65535).optional(),
);
const envSchema = z.object({
  DATABASE_URL: z.string().min(1).optional(),
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default(LOCAL_DEFAULTS.temporalNamespace),
  TEMPORAL_UI_URL: z.url().optional(),
  EMBEDSYNC_TASK_QUEUE: z.string().min(1).default(LOCAL_DEFAULTS.taskQueue),
  EMBEDSYNC_CONFIG: z.string().min(1).optional(),
  EMBEDSYNC_HOME: z.string().min(1).default(LOCAL_DEFAULTS.home),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
  NODE_ENV: z.string().optional(),
  EMBEDSYNC_METRICS_HOST: z.string().min(1).default(METRICS_DEFAULTS.host),
  EMBEDSYNC_INDEX_BUILD_MEMORY: z
    .string()
    .regex(
      /^\d+\s*(kB|MB|GB|TB)?$/,
      "a PostgreSQL memory size such as 1GB or 512MB (0: the server's own setting)",
    )
    .default('1GB'),
  EMBEDSYNC_TEXT_RETENTION: z
    .string()
    .regex(/^\d+\s*(ms|s|min|h|d)$/, 'a duration such as 15min, 2h or 1d')
    .default(DEFAULT_TEXT_RETENTION),
  EMBEDSYNC_SINK_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(3),
  EMBEDSYNC_WORKER_METRICS_PORT: port.default(METRICS_DEFAULTS.workerPort),
  EMBEDSYNC_POLLER_METRICS_PORT: port.default(METRICS_DEFAULTS.pollerPort),
});

export interface Env {
  /** Set when the user points embedsync at an existing Postgres. */
  databaseUrl: string | undefined;
  /** Set when the user points embedsync at an existing Temporal. */
  temporalAddress: string | undefined;
  temporalNamespace: string;
  temporalUiUrl: string | undefined;
  taskQueue: string;
  configPath: string | undefined;
  home: string;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  logFormat: 'json' | 'pretty';
  /** Where the worker's and the poller's /metrics listen; a port of 0 turns that endpoint off. */
  metrics: { host: string; workerPort: number; pollerPort: number };
  /**
   * The most maintenance_work_mem the HNSW build after a first backfill or re-embed may take, in
   * bytes (0: the server's own setting). See src/capture/vector-index.ts.
   */
  indexBuildMemory: number;
  /** How long an embedded text's vector stays on record for reuse, in milliseconds. */
  textRetentionMs: number;
  /** Deliveries to sinks a worker runs at once (src/worker/worker.ts). */
  sinkConcurrency: number;
}

const MEMORY_UNITS = { B: 1, kB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40 } as const;

/** A PostgreSQL memory size ('512MB', '4GB'; a bare number is bytes) in bytes. */
export function memoryBytes(size: string): number {
  const [, n = '0', unit = 'B'] = /^(\d+)\s*(kB|MB|GB|TB)?$/.exec(size) ?? [];
  return Number(n) * MEMORY_UNITS[unit as keyof typeof MEMORY_UNITS];
}

const DURATION_UNITS = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration ('15min', '2h', '1d', '500ms') in milliseconds. */
export function durationMs(duration: string): number {
  const [, n = '0', unit = 'ms'] = /^(\d+)\s*(ms|s|min|h|d)$/.exec(duration) ?? [];
  return Number(n) * DURATION_UNITS[unit as keyof typeof DURATION_UNITS];
}

export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `environment variable ${String(issue?.path[0])}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    temporalAddress: e.TEMPORAL_ADDRESS,
    temporalNamespace: e.TEMPORAL_NAMESPACE,
    temporalUiUrl: e.TEMPORAL_UI_URL,
    taskQueue: e.EMBEDSYNC_TASK_QUEUE,
    configPath: e.EMBEDSYNC_CONFIG,
    home: e.EMBEDSYNC_HOME,
    logLevel: e.LOG_LEVEL,
    logFormat:
      e.LOG_FORMAT ?? (e.NODE_ENV === 'production' || !process.stdout.isTTY ? 'json' : 'pretty'),
    metrics: {
      host: e.EMBEDSYNC_METRICS_HOST,
      workerPort: e.EMBEDSYNC_WORKER_METRICS_PORT,
      pollerPort: e.EMBEDSYNC_POLLER_METRICS_PORT,
    },
    indexBuildMemory: memoryBytes(e.EMBEDSYNC_INDEX_BUILD_MEMORY),
    textRetentionMs: durationMs(e.EMBEDSYNC_TEXT_RETENTION),
    sinkConcurrency: e.EMBEDSYNC_SINK_CONCURRENCY,
  };
}

/**
 * A provider's limits for the whole deployment, from the environment; pipelines may declare
 * stricter ones.
 */
export interface ProviderRateLimit {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

export interface ProviderEnv {
  openai: ProviderRateLimit & { baseURL?: string };
  bedrock: ProviderRateLimit & { region?: string; endpoint?: string };
  gemini: ProviderRateLimit & { baseURL?: string };
  voyage: ProviderRateLimit & { baseURL?: string };
  local: LocalModelEnv;
}

/** How the local provider runs its models (src/providers/local.ts). */
export interface LocalModelEnv {
  /** CPU threads one model's inference may use; the worker's other work keeps the rest. */
  threads: number;
  /** The directory holding the models, one directory each, unless a pipeline names its own. */
  modelsDir: string;
}

/** One thread: a worker on a small machine still has a core for its workflows and Postgres. */
export const DEFAULT_LOCAL_THREADS = 1;

/** Where `embedsync model fetch` puts models and the local provider looks for them. */
export const defaultModelsDir = (home: string): string => path.resolve(home, 'models');

const perMinute = z.coerce.number().int().positive().optional();
const providerEnvSchema = z.object({
  OPENAI_BASE_URL: z.url().optional(),
  EMBEDSYNC_OPENAI_REQUESTS_PER_MINUTE: perMinute,
  EMBEDSYNC_OPENAI_TOKENS_PER_MINUTE: perMinute,
  AWS_REGION: z.string().min(1).optional(),
  AWS_DEFAULT_REGION: z.string().min(1).optional(),
  // The AWS SDKs' own name for a service's endpoint override.
  AWS_ENDPOINT_URL_BEDROCK_RUNTIME: z.url().optional(),
  EMBEDSYNC_BEDROCK_REQUESTS_PER_MINUTE: perMinute,
  EMBEDSYNC_BEDROCK_TOKENS_PER_MINUTE: perMinute,
  // Google's SDK's own name for the Gemini API's base URL.
  GOOGLE_GEMINI_BASE_URL: z.url().optional(),
  EMBEDSYNC_GEMINI_REQUESTS_PER_MINUTE: perMinute,
  EMBEDSYNC_GEMINI_TOKENS_PER_MINUTE: perMinute,
  VOYAGE_BASE_URL: z.url().optional(),
  EMBEDSYNC_VOYAGE_REQUESTS_PER_MINUTE: perMinute,
  EMBEDSYNC_VOYAGE_TOKENS_PER_MINUTE: perMinute,
  EMBEDSYNC_LOCAL_THREADS: z.coerce.number().int().min(1).max(64).default(DEFAULT_LOCAL_THREADS),
  EMBEDSYNC_LOCAL_MODELS: z.string().min(1).optional(),
  EMBEDSYNC_HOME: z.string().min(1).default(LOCAL_DEFAULTS.home),
});

// Empty variables count as unset: `FOO= npx embedsync worker` should not fail URL validation.
const withoutEmpty = (source: NodeJS.ProcessEnv): Record<string, string> =>
  Object.fromEntries(
    Object.entries(source).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''),
  );

/**
 * Provider settings that are not secrets. Credentials are read by readSecret or the AWS default
 * chain.
 */
export function readProviderEnv(source: NodeJS.ProcessEnv = process.env): ProviderEnv {
  const parsed = providerEnvSchema.safeParse(withoutEmpty(source));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `environment variable ${String(issue?.path[0])}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const e = parsed.data;
  return {
    openai: {
      baseURL: e.OPENAI_BASE_URL,
      requestsPerMinute: e.EMBEDSYNC_OPENAI_REQUESTS_PER_MINUTE,
      tokensPerMinute: e.EMBEDSYNC_OPENAI_TOKENS_PER_MINUTE,
    },
    bedrock: {
      region: e.AWS_REGION ?? e.AWS_DEFAULT_REGION,
      endpoint: e.AWS_ENDPOINT_URL_BEDROCK_RUNTIME,
      requestsPerMinute: e.EMBEDSYNC_BEDROCK_REQUESTS_PER_MINUTE,
      tokensPerMinute: e.EMBEDSYNC_BEDROCK_TOKENS_PER_MINUTE,
    },
    gemini: {
      baseURL: e.GOOGLE_GEMINI_BASE_URL,
      requestsPerMinute: e.EMBEDSYNC_GEMINI_REQUESTS_PER_MINUTE,
      tokensPerMinute: e.EMBEDSYNC_GEMINI_TOKENS_PER_MINUTE,
    },
    voyage: {
      baseURL: e.VOYAGE_BASE_URL,
      requestsPerMinute: e.EMBEDSYNC_VOYAGE_REQUESTS_PER_MINUTE,
      tokensPerMinute: e.EMBEDSYNC_VOYAGE_TOKENS_PER_MINUTE,
    },
    local: {
      threads: e.EMBEDSYNC_LOCAL_THREADS,
      modelsDir: path.resolve(e.EMBEDSYNC_LOCAL_MODELS ?? defaultModelsDir(e.EMBEDSYNC_HOME)),
    },
  };
}

/**
 * A secret, by the name of the variable holding it: read where it is used, never stored in config
 * or logged.
 */
export function readSecret(
  name: string,
  source: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const value = source[name];
  return value === undefined || value === '' ? undefined : value;
}
