// DDL on the user's table in short attempts (docs/architecture.md, decision 20). An ALTER TABLE waits
// for ACCESS EXCLUSIVE behind whatever transaction holds the table, and every read and write that
// arrives meanwhile queues behind the ALTER: one long transaction would stall the whole table. So
// each attempt waits at most `lock_timeout` for its locks, gives way, and tries again later.
import type { Pool, PoolClient } from './pool.js';

export interface LockRetryOptions {
  /** How long one attempt waits for a lock: the most any user query queues behind it. */
  lockTimeoutMs?: number;
  /** Attempts before giving up with LockUnavailableError. */
  attempts?: number;
  /** The pause after failed attempt `n` (1-based). */
  backoffMs?: (attempt: number) => number;
  /** Injected by tests, which count attempts rather than time them. */
  sleep?: (ms: number) => Promise<void>;
  /** Called after each attempt that gave way, before the pause. */
  onRetry?: (attempt: number, err: Error) => void | Promise<void>;
}

export const DEFAULT_LOCK_TIMEOUT_MS = 100;
export const DEFAULT_LOCK_ATTEMPTS = 40;

/** Doubling from 100 ms to 5 s, with jitter so two waiters do not collide again in step. */
export function defaultBackoffMs(attempt: number): number {
  const base = Math.min(5000, 100 * 2 ** (attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

/** Every attempt gave way: something held the table the whole time. Retryable later. */
export class LockUnavailableError extends Error {
  constructor(
    readonly what: string,
    readonly attempts: number,
    cause: Error,
  ) {
    super(
      `${what}: gave way ${attempts} times to a transaction holding the table (${cause.message}); ` +
        'a long-running transaction on it (see pg_stat_activity) keeps it from running',
    );
    this.name = 'LockUnavailableError';
  }
}

// lock_not_available (lock_timeout), and a deadlock with a user's transaction: both only mean "not now".
const GAVE_WAY = new Set(['55P03', '40P01']);

const gaveWay = (err: unknown): err is Error =>
  err instanceof Error && 'code' in err && GAVE_WAY.has(String(err.code));

/**
 * Runs fn in one transaction whose lock waits are bounded by lock_timeout; when a lock is not had in
 * time, rolls back and tries again. Returns fn's result, the attempts it took, and how long the last
 * one lasted.
 */
export async function withShortLocks<T>(
  pool: Pool,
  what: string,
  fn: (client: PoolClient) => Promise<T>,
  options: LockRetryOptions = {},
): Promise<{ result: T; attempts: number; ms: number }> {
  const attempts = options.attempts ?? DEFAULT_LOCK_ATTEMPTS;
  const timeout = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const backoff = options.backoffMs ?? defaultBackoffMs;
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt += 1) {
    let gave: Error;
    const client = await pool.connect();
    const started = performance.now();
    try {
      await client.query('begin');
      await client.query(`select set_config('lock_timeout', $1, true)`, [`${timeout}ms`]);
      const result = await fn(client);
      await client.query('commit');
      // The successful attempt's length: the longest its locks can have been held.
      return { result, attempts: attempt, ms: Math.round(performance.now() - started) };
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      if (!gaveWay(err)) throw err;
      gave = err;
    } finally {
      client.release();
    }
    if (attempt >= attempts) throw new LockUnavailableError(what, attempt, gave);
    await options.onRetry?.(attempt, gave);
    await sleep(backoff(attempt));
  }
}
