-- The requests- and tokens-per-minute budgets of each embedding provider, shared by every worker of
-- this database. A bucket refills continuously at its budget's rate up to a burst; each request takes
-- one request and its tokens before it is sent. Taking more than a bucket holds leaves it below zero:
-- the request waits until the refill has paid for it, and every later request waits behind it. So the
-- fleet, taken together, never sends more than the burst plus the rate × the time.
create table embedsync.rate_buckets (
  provider   text not null,
  budget     text not null check (budget in ('requests', 'tokens')),
  -- Available at updated_at; below zero, already promised to waiting requests.
  level      double precision not null,
  updated_at timestamptz not null,
  primary key (provider, budget)
);

-- The bucket refilled to the present, locked for the rest of the calling transaction.
create function embedsync.refilled_bucket(p_provider text, p_budget text, p_per_second double precision, p_burst double precision)
returns double precision language plpgsql as $$
declare
  stored double precision;
  since timestamptz;
begin
  insert into embedsync.rate_buckets (provider, budget, level, updated_at) values (p_provider, p_budget, p_burst, clock_timestamp())
  on conflict (provider, budget) do nothing;
  select level, updated_at into stored, since from embedsync.rate_buckets where provider = p_provider and budget = p_budget for update;
  return least(p_burst, stored + p_per_second * greatest(0, extract(epoch from clock_timestamp() - since)));
end $$;

create function embedsync.set_bucket(p_provider text, p_budget text, p_level double precision)
returns void language sql as $$
  update embedsync.rate_buckets set level = p_level, updated_at = clock_timestamp() where provider = p_provider and budget = p_budget;
$$;

-- Takes a request's turn: one request and p_tokens tokens, from each bucket whose rate is given (null:
-- no such limit). Returns the seconds to wait before sending (0: at once). When the wait would be longer
-- than p_max_wait, takes nothing and returns that wait: the caller backs off and asks again later,
-- instead of holding a slot (and its timeout) that long.
create function embedsync.take_turn(
  p_provider text, p_tokens double precision,
  p_requests_per_second double precision, p_requests_burst double precision,
  p_tokens_per_second double precision, p_tokens_burst double precision,
  p_max_wait double precision)
returns double precision language plpgsql as $$
declare
  requests double precision;
  tokens double precision;
  wait double precision := 0;
begin
  -- Always requests before tokens: one order of locks, so concurrent callers cannot deadlock.
  if p_requests_per_second is not null then
    requests := embedsync.refilled_bucket(p_provider, 'requests', p_requests_per_second, p_requests_burst) - 1;
    wait := greatest(wait, -requests / p_requests_per_second);
  end if;
  if p_tokens_per_second is not null then
    tokens := embedsync.refilled_bucket(p_provider, 'tokens', p_tokens_per_second, p_tokens_burst) - p_tokens;
    wait := greatest(wait, -tokens / p_tokens_per_second);
  end if;
  if wait <= p_max_wait then
    if requests is not null then perform embedsync.set_bucket(p_provider, 'requests', requests); end if;
    if tokens is not null then perform embedsync.set_bucket(p_provider, 'tokens', tokens); end if;
  end if;
  return wait;
end $$;

-- The provider answered "too many requests, retry in p_seconds": nobody sends before then.
create function embedsync.hold_back(
  p_provider text, p_seconds double precision,
  p_requests_per_second double precision, p_requests_burst double precision,
  p_tokens_per_second double precision, p_tokens_burst double precision)
returns void language plpgsql as $$
begin
  if p_requests_per_second is not null then
    perform embedsync.set_bucket(p_provider, 'requests',
      least(embedsync.refilled_bucket(p_provider, 'requests', p_requests_per_second, p_requests_burst), -p_seconds * p_requests_per_second));
  end if;
  if p_tokens_per_second is not null then
    perform embedsync.set_bucket(p_provider, 'tokens',
      least(embedsync.refilled_bucket(p_provider, 'tokens', p_tokens_per_second, p_tokens_burst), -p_seconds * p_tokens_per_second));
  end if;
end $$;
