// The provider's tokens-per-minute bucket, shared by every worker through the database
// (sql/000004_token_buckets.sql). Each call is one short statement; the row lock is held only inside it.
import type { Pool } from '../db/pool.js';
import type { TokenRate } from './rate-plan.js';

/** Takes a request's tokens; resolves to the milliseconds to wait before sending it. */
export async function takeTokens(pool: Pool, provider: string, tokens: number, rate: TokenRate): Promise<number> {
  const { rows } = await pool.query<{ wait: number }>('select embedsync.take_tokens($1, $2, $3, $4) as wait', [provider, tokens, rate.perSecond, rate.burst]);
  return Math.ceil((rows[0]?.wait ?? 0) * 1000);
}

/** The provider said to wait `ms` before the next request: no worker sends before then. */
export async function holdBack(pool: Pool, provider: string, ms: number, rate: TokenRate): Promise<void> {
  await pool.query('select embedsync.hold_back_tokens($1, $2, $3, $4)', [provider, ms / 1000, rate.perSecond, rate.burst]);
}
