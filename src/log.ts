// One logger. JSON in production, pretty in a terminal; secrets are redacted by key.
import { pino, type Logger } from 'pino';
import type { Env } from './config/env.js';

export type { Logger };

const REDACT = ['apiKey', 'api_key', 'authorization', 'password', 'secret', '*.apiKey', '*.password', '*.authorization'];

export function createLogger(env: Pick<Env, 'logLevel' | 'logFormat'>, name = 'embedsync'): Logger {
  return pino({
    name,
    level: env.logLevel,
    redact: { paths: REDACT, censor: '[redacted]' },
    ...(env.logFormat === 'pretty'
      ? { transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' } } }
      : {}),
  });
}
