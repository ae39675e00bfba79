// The provider's requests- and tokens-per-minute buckets, shared by every worker through the
// database: the table embedsync.rate_buckets and the functions embedsync.take_turn and
// embedsync.hold_back, defined in sql/000004_rate_buckets.sql, redefined with an optional clock in
// sql/000010_rate_bucket_clock.sql and with a 429's hold kept as a time in
// sql/000019_rate_hold_time.sql, and embedsync.lower_bucket (sql/000016, 000019) for what the
// provider says is left. Each call is one short statement; the row locks are held only inside it.
import type { Pool } from '../db/pool.js';
import type { BucketRate, RatePlan } from './plan.js';

/**
 * The longest a request waits for its turn inside an activity; beyond it the activity backs off.
 */
export const MAX_TURN_WAIT_MS = 20_000;

export type Turn =
  | { taken: true; waitMs: number }
  /**
   * Nothing was taken: the budget is spoken for longer than MAX_TURN_WAIT_MS; ask again after
   * retryAfterMs.
   */
  | { taken: false; retryAfterMs: number };

export type Buckets = Pick<RatePlan, 'requests' | 'tokens'>;

const rates = (b: BucketRate | undefined): [number | null, number | null] => [
  b?.perSecond ?? null,
  b?.burst ?? null,
];

/** Whether a plan has any bucket to take from. */
export const hasBuckets = (plan: Buckets | undefined): plan is Buckets =>
  plan?.requests !== undefined || plan?.tokens !== undefined;

/**
 * A call of one of the bucket functions; `now` is the time the buckets are refilled to, the
 * database's clock unless a caller (a test) gives one.
 */
function call(
  fn: 'take_turn' | 'hold_back' | 'lower_bucket',
  args: unknown[],
  now: Date | undefined,
): [string, unknown[]] {
  const all = now === undefined ? args : [...args, now];
  return [`select embedsync.${fn}(${all.map((_, i) => `$${i + 1}`).join(', ')}) as result`, all];
}

/** Takes one request and `tokens` tokens, and says how long to wait before sending. */
export async function takeTurn(
  pool: Pool,
  provider: string,
  tokens: number,
  plan: Buckets,
  now?: Date,
): Promise<Turn> {
  const args = [
    provider,
    tokens,
    ...rates(plan.requests),
    ...rates(plan.tokens),
    MAX_TURN_WAIT_MS / 1000,
  ];
  const { rows } = await pool.query<{ result: number }>(...call('take_turn', args, now));
  const waitMs = Math.ceil((rows[0]?.result ?? 0) * 1000);
  return waitMs <= MAX_TURN_WAIT_MS
    ? { taken: true, waitMs }
    : { taken: false, retryAfterMs: waitMs - MAX_TURN_WAIT_MS };
}

/**
 * The provider said to wait `ms` before the next request: no worker sends before then. The hold is
 * kept as a time, so a plan whose rates change before it ends neither stretches nor shortens it;
 * `plan` only pays the turns already promised during it.
 */
export async function holdBack(
  pool: Pool,
  provider: string,
  ms: number,
  plan: Buckets,
  now?: Date,
): Promise<void> {
  await pool.query(
    ...call(
      'hold_back',
      [provider, ms / 1000, ...rates(plan.requests), ...rates(plan.tokens)],
      now,
    ),
  );
}

/**
 * The provider said only `level` is left of a budget: the bucket, if it holds more, is lowered to
 * it. Returns whether it was.
 */
export async function lowerBucket(
  pool: Pool,
  provider: string,
  budget: 'requests' | 'tokens',
  level: number,
  rate: BucketRate,
  now?: Date,
): Promise<boolean> {
  const args = [provider, budget, rate.perSecond, rate.burst, level];
  const { rows } = await pool.query<{ result: boolean }>(...call('lower_bucket', args, now));
  return rows[0]?.result ?? false;
}
