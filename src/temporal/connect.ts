// Client-side connection and defaults only: the worker SDK (seconds to load) stays out of the
// commands.
import { Client, Connection } from '@temporalio/client';
import { LOCAL_DEFAULTS, type Env } from '../config/env.js';

export const temporalAddress = (env: Pick<Env, 'temporalAddress'>): string =>
  env.temporalAddress ?? `127.0.0.1:${LOCAL_DEFAULTS.temporalPort}`;

export const temporalUiUrl = (env: Pick<Env, 'temporalUiUrl'>): string =>
  env.temporalUiUrl ?? `http://127.0.0.1:${LOCAL_DEFAULTS.temporalUiPort}`;

export async function connectClient(
  env: Pick<Env, 'temporalAddress' | 'temporalNamespace'>,
): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: temporalAddress(env) });
  return { client: new Client({ connection, namespace: env.temporalNamespace }), connection };
}
