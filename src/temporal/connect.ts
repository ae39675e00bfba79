import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { LOCAL_DEFAULTS, type Env } from '../config/env.js';
import type { Logger } from '../log.js';
import { installTemporalRuntime } from '../worker/runtime.js';

export const temporalAddress = (env: Pick<Env, 'temporalAddress'>): string =>
  env.temporalAddress ?? `127.0.0.1:${LOCAL_DEFAULTS.temporalPort}`;

export const temporalUiUrl = (env: Pick<Env, 'temporalUiUrl'>): string =>
  env.temporalUiUrl ?? `http://127.0.0.1:${LOCAL_DEFAULTS.temporalUiPort}`;

export async function connectClient(env: Pick<Env, 'temporalAddress' | 'temporalNamespace'>): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: temporalAddress(env) });
  return { client: new Client({ connection, namespace: env.temporalNamespace }), connection };
}

/** The worker's connection; installs the SDK runtime with our logger first (it must precede any connection). */
export async function connectWorker(env: Pick<Env, 'temporalAddress'>, log: Logger): Promise<NativeConnection> {
  installTemporalRuntime(log);
  return NativeConnection.connect({ address: temporalAddress(env) });
}
