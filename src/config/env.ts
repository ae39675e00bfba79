// The one place that reads process.env. Everything else receives a validated Env.
import { z } from 'zod';

/** Defaults of the local stack that `npm run dev` and the tests start. docker-compose.yml mirrors them. */
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

export const localDatabaseUrl = (database: string = LOCAL_DEFAULTS.database): string =>
  `postgres://${LOCAL_DEFAULTS.postgresUser}@127.0.0.1:${LOCAL_DEFAULTS.postgresPort}/${database}`;

const envSchema = z.object({
  DATABASE_URL: z.string().min(1).optional(),
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default(LOCAL_DEFAULTS.temporalNamespace),
  TEMPORAL_UI_URL: z.string().url().optional(),
  EMBEDSYNC_TASK_QUEUE: z.string().min(1).default(LOCAL_DEFAULTS.taskQueue),
  EMBEDSYNC_CONFIG: z.string().min(1).optional(),
  EMBEDSYNC_HOME: z.string().min(1).default(LOCAL_DEFAULTS.home),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
  NODE_ENV: z.string().optional(),
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
}

export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`environment variable ${String(issue?.path[0])}: ${issue?.message ?? 'invalid'}`);
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
    logFormat: e.LOG_FORMAT ?? (e.NODE_ENV === 'production' || !process.stdout.isTTY ? 'json' : 'pretty'),
  };
}
