// The local stack for dev and tests: PostgreSQL with pgvector and a Temporal dev server, started on
// demand.
import { mkdirSync } from 'node:fs';
import { Connection } from '@temporalio/client';
import { LOCAL_DEFAULTS, localDatabaseUrl, type Env } from '../config/env.js';
import { hasSearchAttributes } from '../temporal/search-attributes.js';
import { withStackLock } from './lock.js';
import { stackPaths } from './paths.js';
import {
  ensurePostgresTools,
  findPostgres,
  installedPgvector,
  localPostgresPid,
  prepareDatabase,
  startLocalPostgres,
  stopLocalPostgres,
} from './postgres.js';
import { portAnswers, type LogLine } from './run.js';
import {
  ensureTemporalCli,
  findTemporalCli,
  LOCAL_TEMPORAL_ADDRESS,
  LOCAL_TEMPORAL_UI_URL,
  localTemporalPid,
  startLocalTemporal,
  stopLocalTemporal,
  waitForTemporal,
} from './temporal.js';

export { StackError } from './run.js';
export { stackPaths, type StackPaths } from './paths.js';

export interface LocalStack {
  /** Connection URL of the embedsync database. */
  databaseUrl: string;
  /** Same server, database `postgres`: tests create throwaway databases through it. */
  adminDatabaseUrl: string;
  temporalAddress: string;
  temporalNamespace: string;
  temporalUiUrl: string;
  /** Stops only what this call started; calling it again does nothing. */
  stop(): Promise<void>;
}

export interface StackOptions {
  /** Install missing PostgreSQL, pgvector and temporal CLI (apt and go install). Default false. */
  install?: boolean;
  log?: LogLine;
}

const withDatabase = (url: string, database: string): string => {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
};

/**
 * The dev server serves its Web UI on the gRPC port + 1000; set TEMPORAL_UI_URL for anything else.
 */
function uiUrlFor(address: string): string {
  const [host = '127.0.0.1', port] = address.split(':');
  return `http://${host}:${Number(port ?? LOCAL_DEFAULTS.temporalPort) + 1000}`;
}

/**
 * Makes sure a PostgreSQL (with pgvector and the embedsync database) and a Temporal are reachable,
 * starting local ones under EMBEDSYNC_HOME where the environment does not name its own. Servers
 * that already answer on the local ports are reused and left alone by stop().
 */
export async function ensureStack(env: Env, opts: StackOptions = {}): Promise<LocalStack> {
  const log = opts.log ?? ((): void => undefined);
  const install = opts.install ?? false;
  const paths = stackPaths(env.home);
  const stops: Array<() => Promise<void>> = [];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      // Reverse start order: Temporal, then PostgreSQL.
      for (const s of stops.reverse()) await s();
    })());

  const databaseUrl = env.databaseUrl ?? localDatabaseUrl();
  const adminDatabaseUrl = withDatabase(databaseUrl, 'postgres');
  const temporalAddress = env.temporalAddress ?? LOCAL_TEMPORAL_ADDRESS;
  const temporalUiUrl =
    env.temporalUiUrl ??
    (env.temporalAddress ? uiUrlFor(env.temporalAddress) : LOCAL_TEMPORAL_UI_URL);
  if (env.databaseUrl && env.temporalAddress) {
    return {
      databaseUrl,
      adminDatabaseUrl,
      temporalAddress,
      temporalNamespace: env.temporalNamespace,
      temporalUiUrl,
      stop,
    };
  }

  mkdirSync(paths.home, { recursive: true });
  try {
    await withStackLock(paths.lock, log, async () => {
      if (!env.databaseUrl) {
        // A server on the port (another checkout's stack, `docker compose up`) is used as it is.
        if (await portAnswers(LOCAL_DEFAULTS.postgresPort)) {
          log(`PostgreSQL already answers on 127.0.0.1:${LOCAL_DEFAULTS.postgresPort}; reusing it`);
        } else {
          const pgi = await ensurePostgresTools(install, log);
          await startLocalPostgres(pgi, paths, log);
          stops.push(async () => void (await stopLocalPostgres(pgi, paths)));
        }
        const vector = await prepareDatabase(adminDatabaseUrl, LOCAL_DEFAULTS.database, log);
        log(`PostgreSQL ready (pgvector ${vector} available)`);
      }
      if (!env.temporalAddress) {
        if (await portAnswers(LOCAL_DEFAULTS.temporalPort)) {
          log(`Temporal already answers on ${LOCAL_TEMPORAL_ADDRESS}; reusing it`);
          await waitForTemporal(LOCAL_TEMPORAL_ADDRESS, env.temporalNamespace, {
            timeoutMs: 30_000,
            namespaceMustExist: true,
          });
        } else {
          const cli = await ensureTemporalCli(paths, install, log);
          const temporal = await startLocalTemporal(cli, paths, env.temporalNamespace, log);
          stops.push(() => temporal.stop());
        }
        log(`Temporal ready (namespace ${env.temporalNamespace})`);
      }
    });
  } catch (err) {
    // Leave nothing half-started behind.
    await stop();
    throw err;
  }
  return {
    databaseUrl,
    adminDatabaseUrl,
    temporalAddress,
    temporalNamespace: env.temporalNamespace,
    temporalUiUrl,
    stop,
  };
}

/**
 * Installs whatever the local stack lacks (PostgreSQL, pgvector, temporal CLI) and starts nothing.
 */
export async function installStack(env: Env, opts: { log?: LogLine } = {}): Promise<void> {
  const log = opts.log ?? ((): void => undefined);
  const paths = stackPaths(env.home);
  await withStackLock(paths.lock, log, async () => {
    const pgi = await ensurePostgresTools(true, log);
    log(`PostgreSQL ${pgi.major} in ${pgi.bindir}, pgvector ${installedPgvector(pgi) ?? '?'}`);
    log(`temporal CLI: ${await ensureTemporalCli(paths, true, log)}`);
  });
}

/** Stops the PostgreSQL and Temporal that run from this home (whoever started them). */
export async function stopStack(env: Env, opts: { log?: LogLine } = {}): Promise<void> {
  const log = opts.log ?? ((): void => undefined);
  const paths = stackPaths(env.home);
  const pgi = await findPostgres();
  if (pgi && localPostgresPid(paths) !== undefined) {
    log('stopping PostgreSQL…');
    await stopLocalPostgres(pgi, paths);
    log(`PostgreSQL stopped (data kept in ${paths.postgresData})`);
  } else {
    log(`PostgreSQL: none running from ${paths.postgresData}`);
  }
  log(
    (await stopLocalTemporal(paths))
      ? `Temporal stopped (data kept in ${paths.temporalDb})`
      : `Temporal: none running from ${paths.home}`,
  );
}

export interface StackStatus {
  home: string;
  postgres: {
    pid: number | undefined;
    answers: boolean;
    install: string;
    pgvector: string | undefined;
  };
  temporal: {
    pid: number | undefined;
    answers: boolean;
    searchAttributes: boolean | undefined;
    cli: string | undefined;
  };
}

/** What runs and what is installed, without changing anything. */
export async function stackStatus(env: Env): Promise<StackStatus> {
  const paths = stackPaths(env.home);
  const pgi = await findPostgres();
  const temporalAnswers = await portAnswers(LOCAL_DEFAULTS.temporalPort);
  let searchAttributes: boolean | undefined;
  if (temporalAnswers) {
    const connection = await Connection.connect({
      address: LOCAL_TEMPORAL_ADDRESS,
      connectTimeout: '3s',
    }).catch(() => undefined);
    if (connection) {
      const listed = await connection.operatorService
        .listSearchAttributes({ namespace: env.temporalNamespace })
        .catch(() => undefined);
      searchAttributes = listed ? hasSearchAttributes(listed.customAttributes ?? {}) : undefined;
      await connection.close();
    }
  }
  return {
    home: paths.home,
    postgres: {
      pid: localPostgresPid(paths),
      answers: await portAnswers(LOCAL_DEFAULTS.postgresPort),
      install: pgi ? `PostgreSQL ${pgi.major} (${pgi.bindir})` : 'not installed',
      pgvector: pgi && installedPgvector(pgi),
    },
    temporal: {
      pid: localTemporalPid(paths),
      answers: temporalAnswers,
      searchAttributes,
      cli: await findTemporalCli(paths),
    },
  };
}
