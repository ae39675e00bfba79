// The local PostgreSQL: find or install the server and pgvector, initialise a data dir, start,
// stop.
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { LOCAL_DEFAULTS } from '../config/env.js';
import { aptBuildPgvector, aptInstallPostgres } from './apt.js';
import type { StackPaths } from './paths.js';
import {
  asPostgresUser,
  fileSize,
  isAlive,
  isExecutable,
  isRoot,
  onPath,
  run,
  StackError,
  tailFile,
  type LogLine,
} from './run.js';

export const MIN_POSTGRES_MAJOR = 15;
/** halfvec and HNSW arrived in 0.7. */
export const MIN_PGVECTOR = '0.7.0';

const AVAILABLE_VECTOR_SQL =
  "select default_version from pg_available_extensions where name = 'vector'";
const DATABASE_EXISTS_SQL = 'select 1 from pg_database where datname = $1';

export interface PostgresInstall {
  bindir: string;
  major: number;
  sharedir: string;
}

export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  const b = min.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Debian keeps each major version in /usr/lib/postgresql/<major>/bin; elsewhere, trust PATH. */
export async function findPostgres(): Promise<PostgresInstall | undefined> {
  const debian = '/usr/lib/postgresql';
  const complete = (bindir: string): boolean =>
    ['postgres', 'initdb', 'pg_ctl'].every((b) => isExecutable(join(bindir, b)));
  const majors = existsSync(debian)
    ? readdirSync(debian)
        .filter((d) => /^\d+$/.test(d) && complete(join(debian, d, 'bin')))
        .map(Number)
        .sort((x, y) => y - x)
    : [];
  let bindir: string;
  let major: number;
  if (majors[0] !== undefined) {
    major = majors[0];
    bindir = join(debian, String(major), 'bin');
  } else {
    const initdb = onPath('initdb');
    if (!initdb) return undefined;
    bindir = dirname(realpathSync(initdb));
    if (!complete(bindir)) return undefined;
    const version = /\(PostgreSQL\) (\d+)/.exec(await run(join(bindir, 'postgres'), ['--version']));
    major = Number(version?.[1] ?? 0);
  }
  const pgConfig = join(bindir, 'pg_config');
  const sharedir = isExecutable(pgConfig)
    ? (await run(pgConfig, ['--sharedir'])).trim()
    : `/usr/share/postgresql/${major}`;
  return { bindir, major, sharedir };
}

/** The pgvector version this installation would create, from the extension's control file. */
export function installedPgvector(pgi: PostgresInstall): string | undefined {
  try {
    return /default_version\s*=\s*'([^']+)'/.exec(
      readFileSync(join(pgi.sharedir, 'extension', 'vector.control'), 'utf8'),
    )?.[1];
  } catch {
    return undefined;
  }
}

/** Finds PostgreSQL ≥ 15 with pgvector ≥ 0.7, installing what is missing when `install` is set. */
export async function ensurePostgresTools(
  install: boolean,
  log: LogLine,
): Promise<PostgresInstall> {
  let pgi = await findPostgres();
  if (!pgi || pgi.major < MIN_POSTGRES_MAJOR) {
    const found = pgi
      ? `PostgreSQL ${pgi.major} is too old (need ≥ ${MIN_POSTGRES_MAJOR})`
      : `PostgreSQL ≥ ${MIN_POSTGRES_MAJOR} is not installed`;
    if (!install)
      throw new StackError(
        `${found}: run \`npx embedsync stack install\`, or set DATABASE_URL, or run \`docker compose up\``,
      );
    log(`${found}; installing it`);
    await aptInstallPostgres(log);
    pgi = await findPostgres();
    if (!pgi || pgi.major < MIN_POSTGRES_MAJOR)
      throw new StackError(`${found}, and apt did not provide a newer one`);
  }
  const vector = installedPgvector(pgi);
  if (!vector || !versionAtLeast(vector, MIN_PGVECTOR)) {
    const found = `pgvector ${vector ? `${vector} is too old` : 'is not installed'} for PostgreSQL ${pgi.major} (need ≥ ${MIN_PGVECTOR})`;
    if (!install)
      throw new StackError(
        `${found}: run \`npx embedsync stack install\`, or set DATABASE_URL, or run \`docker compose up\``,
      );
    log(`${found}; installing it`);
    await aptBuildPgvector(join(pgi.bindir, 'pg_config'), pgi.major, log);
    const now = installedPgvector(pgi);
    if (!now || !versionAtLeast(now, MIN_PGVECTOR))
      throw new StackError(`${found}, and the build did not install a newer one`);
  }
  return pgi;
}

function postgresOsUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new StackError(
      'running as root, but there is no `postgres` OS user for the server to run as: create it (useradd --system postgres) or run as an ordinary user',
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * As root, the data dir is owned by `postgres`, which must be able to reach it through every
 * parent.
 */
async function handDataDirToPostgresUser(paths: StackPaths, log: LogLine): Promise<void> {
  const { uid, gid } = postgresOsUser();
  chownSync(paths.postgresData, uid, gid);
  if (!existsSync(paths.postgresLog)) writeFileSync(paths.postgresLog, '');
  chownSync(paths.postgresLog, uid, gid);
  const reachable = async (): Promise<boolean> =>
    run('runuser', ['-u', 'postgres', '--', 'test', '-w', paths.postgresData]).then(
      () => true,
      () => false,
    );
  if (await reachable()) return;
  // Search permission only (no listing) on the parents that lack it, e.g. a repository under /root.
  for (let dir = dirname(paths.postgresData); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      log(`letting the postgres user pass through ${dir} (chmod o+x)`);
      chmodSync(dir, statSync(dir).mode | 0o001);
    }
    if (dirname(dir) === dir) break;
  }
  if (!(await reachable()))
    throw new StackError(
      `the postgres OS user cannot write ${paths.postgresData}; set EMBEDSYNC_HOME to a directory it can reach`,
    );
}

const CONF_FILE = 'embedsync.conf';
const settings = (): string =>
  [
    '# Written on every start of the local stack; edits are overwritten.',
    "listen_addresses = '127.0.0.1'",
    `port = ${LOCAL_DEFAULTS.postgresPort}`,
    // TCP only: a socket directory would need to be writable by the server's user and short enough
    // for sun_path.
    "unix_socket_directories = ''",
    'max_connections = 200',
    "shared_buffers = '256MB'",
    // Logical capture (decision 29) reads the WAL through a slot; a slot nobody reads may keep no
    // more than this much of it before the server gives it up.
    'wal_level = logical',
    "max_slot_wal_keep_size = '4GB'",
    '',
  ].join('\n');

/** Initialises the data dir on first use and starts the server; data survives restarts. */
export async function startLocalPostgres(
  pgi: PostgresInstall,
  paths: StackPaths,
  log: LogLine,
): Promise<void> {
  mkdirSync(paths.postgresData, { recursive: true, mode: 0o700 });
  if (isRoot()) await handDataDirToPostgresUser(paths, log);
  const bin = (name: string): string => join(pgi.bindir, name);
  if (!existsSync(join(paths.postgresData, 'PG_VERSION'))) {
    log(`initialising a PostgreSQL ${pgi.major} data dir in ${paths.postgresData}`);
    // trust: a local dev stack that listens on 127.0.0.1 only, so there is no password to manage.
    await run(
      ...asPostgresUser(bin('initdb'), [
        '-D',
        paths.postgresData,
        '-U',
        LOCAL_DEFAULTS.postgresUser,
        '--auth=trust',
        '--encoding=UTF8',
        '--no-locale',
      ]),
    );
    appendFileSync(
      join(paths.postgresData, 'postgresql.conf'),
      `\ninclude_if_exists = '${CONF_FILE}'\n`,
    );
  }
  writeFileSync(join(paths.postgresData, CONF_FILE), settings());
  if (isRoot()) {
    const { uid, gid } = postgresOsUser();
    chownSync(join(paths.postgresData, CONF_FILE), uid, gid);
  }
  log(
    `starting PostgreSQL on 127.0.0.1:${LOCAL_DEFAULTS.postgresPort} (log: ${paths.postgresLog})`,
  );
  const logStart = fileSize(paths.postgresLog);
  try {
    await run(
      ...asPostgresUser(bin('pg_ctl'), [
        '-D',
        paths.postgresData,
        '-l',
        paths.postgresLog,
        '-w',
        '-t',
        '60',
        '-s',
        'start',
      ]),
      { detached: true },
    );
  } catch (err) {
    const e = err as StackError;
    throw new StackError(
      `could not start PostgreSQL: ${e.message} (log: ${paths.postgresLog})`,
      e.command,
      tailFile(paths.postgresLog, 20, logStart) || e.detail,
    );
  }
}

/** The pid of the server running from this data dir, if any. */
export function localPostgresPid(paths: StackPaths): number | undefined {
  try {
    const pid = Number(
      readFileSync(join(paths.postgresData, 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    return pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops the server running from this data dir; false when none was running. */
export async function stopLocalPostgres(pgi: PostgresInstall, paths: StackPaths): Promise<boolean> {
  if (localPostgresPid(paths) === undefined) return false;
  await run(
    ...asPostgresUser(join(pgi.bindir, 'pg_ctl'), [
      '-D',
      paths.postgresData,
      '-m',
      'fast',
      '-w',
      '-t',
      '60',
      '-s',
      'stop',
    ]),
  );
  return true;
}

/** Creates the database if missing and checks that the server offers pgvector ≥ 0.7. */
export async function prepareDatabase(
  adminDatabaseUrl: string,
  database: string,
  log: LogLine,
): Promise<string> {
  const client = new pg.Client({
    connectionString: adminDatabaseUrl,
    connectionTimeoutMillis: 10_000,
  });
  try {
    await client.connect();
  } catch (err) {
    throw new StackError(
      `cannot connect to PostgreSQL at ${adminDatabaseUrl}: ${(err as Error).message}`,
    );
  }
  try {
    const vector = (await client.query<{ default_version: string }>(AVAILABLE_VECTOR_SQL)).rows[0]
      ?.default_version;
    if (!vector || !versionAtLeast(vector, MIN_PGVECTOR)) {
      throw new StackError(
        `the PostgreSQL at ${adminDatabaseUrl} offers ${vector ? `pgvector ${vector}` : 'no pgvector'} (need ≥ ${MIN_PGVECTOR}): install pgvector for that server`,
      );
    }
    if ((await client.query(DATABASE_EXISTS_SQL, [database])).rowCount === 0) {
      log(`creating database ${database}`);
      try {
        await client.query(`create database ${client.escapeIdentifier(database)}`);
      } catch (err) {
        // Another process created it in the meantime.
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
    return vector;
  } finally {
    await client.end();
  }
}
