-- The rate buckets read the present from an optional trailing p_now (default clock_timestamp()), so
-- their arithmetic can be checked at exact, given times; callers that pass no time behave as before.
-- One p_now per call also means both buckets of a turn are refilled to the same instant.
drop function embedsync.take_turn(text, double precision, double precision, double precision, double precision,
  double precision, double precision);
drop function embedsync.hold_back(text, double precision, double precision, double precision, double precision,
  double precision);
drop function embedsync.refilled_bucket(text, text, double precision, double precision);
drop function embedsync.set_bucket(text, text, double precision);

-- The bucket refilled to p_now, locked for the rest of the calling transaction.
create function embedsync.refilled_bucket(
  p_provider text, p_budget text, p_per_second double precision, p_burst double precision,
  p_now timestamptz default clock_timestamp())
returns double precision language plpgsql as $$
declare
  stored double precision;
  since timestamptz;
begin
  insert into embedsync.rate_buckets (provider, budget, level, updated_at) values (p_provider, p_budget, p_burst, p_now)
  on conflict (provider, budget) do nothing;
  select level, updated_at into stored, since from embedsync.rate_buckets
   where provider = p_provider and budget = p_budget for update;
  return least(p_burst, stored + p_per_second * greatest(0, extract(epoch from p_now - since)));
end $$;

create function embedsync.set_bucket(p_provider text, p_budget text, p_level double precision,
  p_now timestamptz default clock_timestamp())
returns void language sql as $$
  update embedsync.rate_buckets set level = p_level, updated_at = p_now
   where provider = p_provider and budget = p_budget;
$$;

-- Takes a request's turn: one request and p_tokens tokens, from each bucket whose rate is given (null:
-- no such limit). Returns the seconds to wait before sending (0: at once). When the wait would be longer
-- than p_max_wait, takes nothing and returns that wait: the caller backs off and asks again later,
-- instead of holding a slot (and its timeout) that long.
create function embedsync.take_turn(
  p_provider text, p_tokens double precision,
  p_requests_per_second double precision, p_requests_burst double precision,
  p_tokens_per_second double precision, p_tokens_burst double precision,
  p_max_wait double precision,
  p_now timestamptz default clock_timestamp())
returns double precision language plpgsql as $$
declare
  requests double precision;
  tokens double precision;
  wait double precision := 0;
begin
  -- Always requests before tokens: one order of locks, so concurrent callers cannot deadlock.
  if p_requests_per_second is not null then
    requests := embedsync.refilled_bucket(p_provider, 'requests', p_requests_per_second, p_requests_burst, p_now) - 1;
    wait := greatest(wait, -requests / p_requests_per_second);
  end if;
  if p_tokens_per_second is not null then
    tokens := embedsync.refilled_bucket(p_provider, 'tokens', p_tokens_per_second, p_tokens_burst, p_now) - p_tokens;
    wait := greatest(wait, -tokens / p_tokens_per_second);
  end if;
  if wait <= p_max_wait then
    if requests is not null then perform embedsync.set_bucket(p_provider, 'requests', requests, p_now); end if;
    if tokens is not null then perform embedsync.set_bucket(p_provider, 'tokens', tokens, p_now); end if;
  end if;
  return wait;
end $$;

-- The provider answered "too many requests, retry in p_seconds": nobody sends before then.
create function embedsync.hold_back(
  p_provider text, p_seconds double precision,
  p_requests_per_second double precision, p_requests_burst double precision,
  p_tokens_per_second double precision, p_tokens_burst double precision,
  p_now timestamptz default clock_timestamp())
returns void language plpgsql as $$
begin
  if p_requests_per_second is not null then
    perform embedsync.set_bucket(p_provider, 'requests',
      least(embedsync.refilled_bucket(p_provider, 'requests', p_requests_per_second, p_requests_burst, p_now),
            -p_seconds * p_requests_per_second),
      p_now);
  end if;
  if p_tokens_per_second is not null then
    perform embedsync.set_bucket(p_provider, 'tokens',
      least(embedsync.refilled_bucket(p_provider, 'tokens', p_tokens_per_second, p_tokens_burst, p_now),
            -p_seconds * p_tokens_per_second),
      p_now);
  end if;
end $$;
