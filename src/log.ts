// One logger. JSON in production, pretty in a terminal; secrets are redacted by key.
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Env } from './config/env.js';

export type { Logger };

const REDACT = [
  'apiKey',
  'api_key',
  'authorization',
  'password',
  'secret',
  '*.apiKey',
  '*.password',
  '*.authorization',
];

/**
 * Causes followed at most this deep: enough for failure → activity failure → error, never a loop.
 */
const MAX_CAUSE_DEPTH = 5;

/**
 * An error as a log field: its class, message, code, stack and causes. Only these: a driver's own
 * fields (pg's `detail` quotes the failing row, vectors and texts included) stay out of the logs.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const fields = err as Error & { type?: unknown; nonRetryable?: unknown; code?: unknown };
  const type = err.constructor.name;
  return {
    type,
    // pg names all its errors 'error'; a plain Error's name says nothing its type does not.
    ...(err.name && err.name !== type && err.name !== 'Error' && err.name !== 'error'
      ? { name: err.name }
      : {}),
    message: err.message,
    // An ApplicationFailure's type is the class of the error it stands for.
    ...(typeof fields.type === 'string' ? { failureType: fields.type } : {}),
    ...(typeof fields.nonRetryable === 'boolean' ? { nonRetryable: fields.nonRetryable } : {}),
    ...(typeof fields.code === 'string' || typeof fields.code === 'number'
      ? { code: fields.code }
      : {}),
    stack: err.stack,
    ...(err.cause !== undefined && depth < MAX_CAUSE_DEPTH
      ? { cause: serializeError(err.cause, depth + 1) }
      : {}),
  };
}

/** `destination`: where JSON lines go instead of stdout (tests read them); ignored when pretty. */
export function createLogger(
  env: Pick<Env, 'logLevel' | 'logFormat'>,
  name = 'embedsync',
  destination?: DestinationStream,
): Logger {
  const options = {
    name,
    level: env.logLevel,
    redact: { paths: REDACT, censor: '[redacted]' },
    // The Temporal SDK passes an attempt's failure as `error`; our own code uses `err`.
    serializers: { err: serializeError, error: serializeError },
  };
  if (env.logFormat === 'pretty') {
    const pretty = { colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' };
    return pino({ ...options, transport: { target: 'pino-pretty', options: pretty } });
  }
  return destination ? pino(options, destination) : pino(options);
}
