import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Either: a query that needs no transaction of its own runs on whichever it is given. */
export type Queryable = Pick<Pool | PoolClient, 'query'>;

// int8 comes back as a string by default; the counts and outbox ids here fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/**
 * The settings under which a key becomes text and text becomes a key again. The capture functions
 * carry them and every connection embedsync opens starts with them, so a row has one key text
 * whatever the writing session's TimeZone, DateStyle, IntervalStyle or float precision.
 * ISO dates parse the same under any DateStyle order; extra_float_digits = 1 prints floats exactly.
 */
export const KEY_TEXT_SETTINGS: Readonly<Record<string, string>> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  extra_float_digits: '1',
  bytea_output: 'hex',
};

/** The settings as a libpq `options` startup parameter: -c name=value, spaces escaped. */
export const keyTextOptions = (): string =>
  Object.entries(KEY_TEXT_SETTINGS)
    .map(([name, value]) => `-c ${name}=${value.replaceAll(' ', '\\ ')}`)
    .join(' ');

/**
 * The connection string with the key-text settings added to its `options`, after any of the user's
 * (the last -c wins): node-pg lets a URL's options override the config's, so they go in the URL.
 */
export function withKeyTextSettings(connectionString: string): string {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    return connectionString; // a keyword=value string: the pool's own options apply
  }
  const theirs = url.searchParams.get('options');
  url.searchParams.set('options', theirs ? `${theirs} ${keyTextOptions()}` : keyTextOptions());
  return url.toString();
}

export function createPool(
  connectionString: string,
  options: { max?: number; applicationName?: string } = {},
): Pool {
  const pool = new pg.Pool({
    connectionString: withKeyTextSettings(connectionString),
    options: keyTextOptions(),
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'embedsync',
  });
  // A connection that dies (server restart, failover, pg_terminate_backend) emits 'error' on its
  // client, and on the pool when idle; unhandled, that kills the process. The pool drops dead
  // connections and the next query on one fails like any other, so there is nothing more to do
  // here.
  pool.on('error', ignoreConnectionError);
  pool.on('connect', (client) => client.on('error', ignoreConnectionError));
  return pool;
}

const ignoreConnectionError = (): void => undefined;

/** Runs fn in one transaction on its own connection; rolls back on any error. */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
