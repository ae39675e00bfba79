// embedsync.token_ledger (sql/000013): every token paid, per pipeline, generation, UTC day and mode,
// with the texts sent and those reused instead of paid for. Written after each provider request (or
// each batch the provider completed), read by `status`, its `--json` and the SQL view
// embedsync.pipeline_status.
import type { Queryable } from './pool.js';

/** What paid for the tokens: change sync, a table walk (backfill, re-embed), a provider batch. */
export type SpendMode = 'sync' | 'backfill' | 'reembed' | 'batch';

export interface Spend {
  pipeline: string;
  generation: number;
  mode: SpendMode;
  provider: string;
  model: string;
  tokens: number;
  requests: number;
  /** Texts sent to the provider. */
  texts: number;
  /** Texts whose vector was reused instead of paid for again. */
  reused: number;
  /** The day it counts for; the database's today (UTC) unless a test gives one. */
  at?: Date;
}

/** Adds to the day's row for the pipeline, generation and mode. */
export async function recordSpend(q: Queryable, spend: Spend): Promise<void> {
  if (spend.tokens === 0 && spend.requests === 0 && spend.texts === 0 && spend.reused === 0) return;
  await q.query(
    `insert into embedsync.token_ledger as l
       (pipeline, generation, day, mode, provider, model, tokens, requests, texts, reused)
     values ($1, $2, coalesce($3::timestamptz, now()) at time zone 'utc', $4, $5, $6, $7, $8, $9, $10)
     on conflict (pipeline, generation, day, mode) do update
       set tokens = l.tokens + excluded.tokens, requests = l.requests + excluded.requests,
           texts = l.texts + excluded.texts, reused = l.reused + excluded.reused`,
    [
      spend.pipeline,
      spend.generation,
      spend.at ?? null,
      spend.mode,
      spend.provider,
      spend.model,
      spend.tokens,
      spend.requests,
      spend.texts,
      spend.reused,
    ],
  );
}

/** One model's spend in one period and mode: tokens priced by the model that paid them. */
export interface LedgerLine {
  pipeline: string;
  mode: SpendMode;
  provider: string;
  model: string;
  period: 'today' | 'last30Days' | 'total';
  tokens: number;
  requests: number;
  texts: number;
  reused: number;
}

/**
 * A pipeline's spend (every pipeline's, without a name) today, in the last 30 days (today
 * included) and in all, by mode and model. `now` is the database's clock unless a test gives one.
 */
export async function readLedger(
  q: Queryable,
  pipeline?: string,
  now?: Date,
): Promise<LedgerLine[]> {
  const { rows } = await q.query<{
    pipeline: string;
    mode: SpendMode;
    provider: string;
    model: string;
    period: LedgerLine['period'];
    tokens: string;
    requests: string;
    texts: string;
    reused: string;
  }>(
    `with today as (select (coalesce($2::timestamptz, now()) at time zone 'utc')::date as d),
     periods(period, since) as (
       select 'today', d from today union all
       select 'last30Days', d - 29 from today union all
       select 'total', '-infinity'::date from today)
     select l.pipeline, l.mode, l.provider, l.model, periods.period,
            sum(l.tokens) as tokens, sum(l.requests) as requests,
            sum(l.texts) as texts, sum(l.reused) as reused
       from embedsync.token_ledger l
       join periods on l.day >= periods.since
      where $1::text is null or l.pipeline = $1
      group by l.pipeline, l.mode, l.provider, l.model, periods.period
      order by l.pipeline, periods.period, l.mode, l.model`,
    [pipeline ?? null, now ?? null],
  );
  return rows.map((r) => ({
    ...r,
    tokens: Number(r.tokens),
    requests: Number(r.requests),
    texts: Number(r.texts),
    reused: Number(r.reused),
  }));
}
