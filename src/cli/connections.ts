// The connections the operator commands (backfill, pause, resume, status, verify) open, with a
// failure to reach a server turned into one line that names the variable to fix.
import { Client, Connection } from '@temporalio/client';
import type { Env } from '../config/env.js';
import { migrate } from '../db/migrator.js';
import { createPool, type Pool } from '../db/pool.js';
import { temporalAddress } from '../temporal/connect.js';
import { databaseUrl, UserError } from './common.js';

export { temporalAddress, temporalUiUrl } from '../temporal/connect.js';

/** The SDK's default of 10 s is long for a command someone is waiting on. */
const CONNECT_TIMEOUT = '5s';

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'EAI_AGAIN',
  '57P03',
  '3D000',
]);

/** A pool on DATABASE_URL with the schema migrated, as the other commands do at start. */
export async function openDatabase(env: Env, applicationName: string): Promise<Pool> {
  const url = databaseUrl(env);
  const pool = createPool(url, { max: 3, applicationName });
  try {
    await migrate(pool);
    return pool;
  } catch (err) {
    await pool.end().catch(() => undefined);
    const code = (err as { code?: string }).code;
    if (code && UNREACHABLE.has(code)) {
      const u = new URL(url);
      throw new UserError(
        `cannot reach Postgres at ${u.host}${u.pathname} (DATABASE_URL): ${(err as Error).message}`,
      );
    }
    throw err;
  }
}

export interface TemporalSession {
  client: Client;
  close(): Promise<void>;
}

export class TemporalUnreachableError extends UserError {
  override name = 'TemporalUnreachableError';
}

export async function connectTemporal(env: Env): Promise<TemporalSession> {
  const address = temporalAddress(env);
  let connection: Connection;
  try {
    connection = await Connection.connect({ address, connectTimeout: CONNECT_TIMEOUT });
  } catch (err) {
    throw new TemporalUnreachableError(
      `cannot reach Temporal at ${address} (TEMPORAL_ADDRESS): ${(err as Error).message}`,
    );
  }
  return {
    client: new Client({ connection, namespace: env.temporalNamespace }),
    close: () => connection.close(),
  };
}
