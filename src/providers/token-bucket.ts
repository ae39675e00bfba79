// The provider's tokens-per-minute bucket, shared by every worker through the database
// (sql/000004_token_buckets.sql). Each call is one short statement; the row lock is held only inside it.
import type { Pool } from '../db/pool.js';
import type { TokenRate } from './rate-plan.js';

/** The longest a request waits for its turn inside an activity; beyond it the activity backs off. */
export const MAX_TOKEN_WAIT_MS = 20_000;

export type TokenTurn =
  | { taken: true; waitMs: number }
  /** Nothing was taken: the budget is spoken for longer than MAX_TOKEN_WAIT_MS; ask again after retryAfterMs. */
  | { taken: false; retryAfterMs: number };

/** Takes a request's tokens and says how long to wait before sending it. */
export async function takeTokens(pool: Pool, provider: string, tokens: number, rate: TokenRate): Promise<TokenTurn> {
  const { rows } = await pool.query<{ wait: number }>('select embedsync.take_tokens($1, $2, $3, $4, $5) as wait', [provider, tokens, rate.perSecond, rate.burst, MAX_TOKEN_WAIT_MS / 1000]);
  const waitMs = Math.ceil((rows[0]?.wait ?? 0) * 1000);
  return waitMs <= MAX_TOKEN_WAIT_MS ? { taken: true, waitMs } : { taken: false, retryAfterMs: waitMs - MAX_TOKEN_WAIT_MS };
}

/** The provider said to wait `ms` before the next request: no worker sends before then. */
export async function holdBack(pool: Pool, provider: string, ms: number, rate: TokenRate): Promise<void> {
  await pool.query('select embedsync.hold_back_tokens($1, $2, $3, $4)', [provider, ms / 1000, rate.perSecond, rate.burst]);
}
