-- What each provider says of its own budgets, learned from its answers and shared by every worker
-- (owned by src/db/rate-observations.ts; the decisions are src/rate-limit/observed.ts's):
-- per provider and model, how the provider's token count compares with embedsync's estimate, the
-- per-minute limits its x-ratelimit-limit-* headers report, and counts of what was seen and done.
create table embedsync.rate_observations (
  provider          text not null,
  model             text not null,
  -- The provider's count ÷ embedsync's estimate, smoothed over its answers; the buckets are charged
  -- the estimate × this.
  token_ratio       double precision not null default 1,
  ratio_samples     bigint not null default 0,
  -- The budgets the provider last reported (x-ratelimit-limit-requests / -tokens); null: none seen.
  requests_per_minute double precision,
  tokens_per_minute   double precision,
  limits_seen_at    timestamptz,
  -- Counts since the row was made: answers, 429s among them, tokens as estimated, as charged to the
  -- tokens bucket and as the provider counted them, and times a bucket was lowered to what the
  -- provider said was left.
  answers           bigint not null default 0,
  rate_limited      bigint not null default 0,
  estimated_tokens  double precision not null default 0,
  charged_tokens    double precision not null default 0,
  reported_tokens   double precision not null default 0,
  buckets_lowered   bigint not null default 0,
  updated_at        timestamptz not null default now(),
  primary key (provider, model)
);

-- The provider said it has only p_level left: a bucket (refilled to p_now) that holds more is
-- lowered to p_level. Returns whether it was. Never raises a bucket: the provider's word can only
-- make embedsync more careful than its own pacing.
create function embedsync.lower_bucket(
  p_provider text, p_budget text, p_per_second double precision, p_burst double precision,
  p_level double precision, p_now timestamptz default clock_timestamp())
returns boolean language plpgsql as $$
declare
  current double precision := embedsync.refilled_bucket(p_provider, p_budget, p_per_second, p_burst, p_now);
begin
  if current <= p_level then return false; end if;
  perform embedsync.set_bucket(p_provider, p_budget, p_level, p_now);
  return true;
end $$;
