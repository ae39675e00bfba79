import { NativeConnection } from '@temporalio/worker';
import type { Env } from '../config/env.js';
import type { Logger } from '../log.js';
import { temporalAddress } from '../temporal/connect.js';
import { installTemporalRuntime, type TemporalRuntimeOptions } from './runtime.js';

/**
 * The worker's connection; installs the SDK runtime with our logger first (it must precede any
 * connection).
 */
export async function connectWorker(
  env: Pick<Env, 'temporalAddress'>,
  log: Logger,
  runtime: TemporalRuntimeOptions = {},
): Promise<NativeConnection> {
  await installTemporalRuntime(log, runtime);
  return NativeConnection.connect({ address: temporalAddress(env) });
}
