// embedsync.rate_observations (sql/000016): what each provider's answers said of its budgets, per
// provider and model, shared by every worker. Every query of that table. The decisions (how a ratio
// is learned, which limits apply) are src/rate-limit/observed.ts's.
import type { Pool } from './pool.js';

/** One answer's worth of observation, as it is added to the row. */
export interface Observation {
  provider: string;
  model: string;
  /** The tokens embedsync estimated, charged to the tokens bucket, and the provider counted. */
  estimated: number;
  charged: number;
  reported: number;
  /** The per-minute limits the answer reported, if any. */
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
  rateLimited: boolean;
  /** The provider states limits only in a 429: a success without them clears nothing. */
  limitsOnlyWhenRateLimited?: boolean | undefined;
  /** Buckets this answer lowered. */
  lowered: number;
}

export interface RateObservations {
  provider: string;
  model: string;
  tokenRatio: number;
  ratioSamples: number;
  requestsPerMinute: number | undefined;
  tokensPerMinute: number | undefined;
  limitsSeenAt: Date | null;
  answers: number;
  rateLimited: number;
  estimatedTokens: number;
  chargedTokens: number;
  reportedTokens: number;
  bucketsLowered: number;
  updatedAt: Date;
}

const COLUMNS = `provider, model, token_ratio as "tokenRatio", ratio_samples as "ratioSamples",
  requests_per_minute as "requestsPerMinute", tokens_per_minute as "tokensPerMinute",
  limits_seen_at as "limitsSeenAt", answers, rate_limited as "rateLimited",
  estimated_tokens as "estimatedTokens", charged_tokens as "chargedTokens",
  reported_tokens as "reportedTokens", buckets_lowered as "bucketsLowered", updated_at as "updatedAt"`;

// A null column is undefined in the code: the limit is unknown.
const fromRow = (row: RateObservations): RateObservations => ({
  ...row,
  requestsPerMinute: row.requestsPerMinute ?? undefined,
  tokensPerMinute: row.tokensPerMinute ?? undefined,
});

/**
 * Adds one answer to its provider+model's row, the token ratio moved by `nextRatio` from the
 * stored one (under the row's lock, so concurrent answers each count), and returns the row.
 */
export async function recordObservation(
  pool: Pool,
  o: Observation,
  nextRatio: (previous: { ratio: number; samples: number }) => { ratio: number; samples: number },
): Promise<RateObservations> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(
      `insert into embedsync.rate_observations (provider, model) values ($1, $2)
       on conflict (provider, model) do nothing`,
      [o.provider, o.model],
    );
    const { rows: before } = await client.query<{ ratio: number; samples: number }>(
      `select token_ratio as ratio, ratio_samples as samples from embedsync.rate_observations
        where provider = $1 and model = $2 for update`,
      [o.provider, o.model],
    );
    const next = nextRatio(before[0] ?? { ratio: 1, samples: 0 });
    const limitsSeen = o.requestsPerMinute !== undefined || o.tokensPerMinute !== undefined;
    // A successful answer that reports no limit at all: the server keeps none now (the pipeline
    // moved to a server that reports none, or the account's limit was lifted), so none is kept.
    // A 429 without them says nothing either way, nor does any answer of a provider that states
    // its limits only in 429s.
    const noneNow = !limitsSeen && !o.rateLimited && o.limitsOnlyWhenRateLimited !== true;
    const { rows } = await client.query<RateObservations>(
      `update embedsync.rate_observations set
         token_ratio = $3, ratio_samples = $4,
         requests_per_minute = case when $13 then null else coalesce($5, requests_per_minute) end,
         tokens_per_minute = case when $13 then null else coalesce($6, tokens_per_minute) end,
         limits_seen_at = case when $7 then now() when $13 then null else limits_seen_at end,
         answers = answers + 1, rate_limited = rate_limited + $8::int,
         estimated_tokens = estimated_tokens + $9, charged_tokens = charged_tokens + $10,
         reported_tokens = reported_tokens + $11, buckets_lowered = buckets_lowered + $12,
         updated_at = now()
       where provider = $1 and model = $2
       returning ${COLUMNS}`,
      [
        o.provider,
        o.model,
        next.ratio,
        next.samples,
        o.requestsPerMinute ?? null,
        o.tokensPerMinute ?? null,
        limitsSeen,
        o.rateLimited ? 1 : 0,
        o.estimated,
        o.charged,
        o.reported,
        o.lowered,
        noneNow,
      ],
    );
    await client.query('commit');
    const row = rows[0];
    if (!row) throw new Error(`rate observations of ${o.provider}/${o.model} vanished`);
    return fromRow(row);
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Every provider+model's observations (a handful of rows). */
export async function readRateObservations(pool: Pool): Promise<RateObservations[]> {
  const { rows } = await pool.query<RateObservations>(
    `select ${COLUMNS} from embedsync.rate_observations order by provider, model`,
  );
  return rows.map(fromRow);
}
