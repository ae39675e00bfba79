// A PostgreSQL of the scenario's own, so that killing it disturbs nobody else: a fresh cluster in a
// temp dir on a free port. As root the server must run as the `postgres` OS user, as the stack
// does.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findPostgres } from '../../../src/stack/postgres.js';
import { asPostgresUser, isRoot, run } from '../../../src/stack/run.js';
import { waitFor } from '../../helpers/wait.js';
import { freePort, removeOnExit, type Child } from './processes.js';
import type { Scene } from './scene.js';

export interface PostgresServer {
  /** URL of a database on this server. */
  url(database: string): string;
  /**
   * SIGKILL to the postmaster and every backend at once: a crash, recovered from the WAL on start.
   */
  kill(): Promise<void>;
  /** Starts the server again on the same data dir and port. */
  start(): Promise<void>;
}

export async function startPostgresServer(scene: Scene): Promise<PostgresServer> {
  const pgi = await findPostgres();
  if (!pgi) throw new Error('PostgreSQL is not installed: run `npx embedsync stack install`');
  const dir = mkdtempSync(join(tmpdir(), 'embedsync-chaos-postgres-'));
  removeOnExit(dir);
  scene.onCleanup(() => rm(dir, { recursive: true, force: true }));
  if (isRoot()) await run('chown', ['postgres:', dir]);
  const data = join(dir, 'data');
  // --no-sync: only the initial cluster skips fsync; the server itself runs with the defaults.
  await run(
    ...asPostgresUser(join(pgi.bindir, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--no-locale',
      '--no-sync',
    ]),
  );
  const port = await freePort();
  const url = (database: string): string => `postgres://postgres@127.0.0.1:${port}/${database}`;
  // TCP only: no socket directory to own or to keep short.
  const args = [
    '-D',
    data,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=',
    '-c',
    'max_connections=100',
  ];
  let server: Child | undefined;
  let starts = 0;
  const start = async (): Promise<void> => {
    starts += 1;
    const child = scene.spawn(
      starts === 1 ? 'postgres' : `postgres-${starts}`,
      ...asPostgresUser(join(pgi.bindir, 'postgres'), args),
    );
    server = child;
    await waitFor(
      'PostgreSQL to accept connections',
      async () => {
        if (!child.running) throw new Error('the server exited');
        const client = new pg.Client({
          connectionString: url('postgres'),
          connectionTimeoutMillis: 2000,
        });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('select 1');
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      60_000,
      100,
    );
  };
  await start();
  return {
    url,
    kill: async () => {
      await server?.kill('SIGKILL');
    },
    start,
  };
}
