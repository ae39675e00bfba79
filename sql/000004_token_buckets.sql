-- The tokens-per-minute budget of each embedding provider, shared by every worker of this database.
-- A bucket refills continuously at the budget's rate up to a burst; each request takes its tokens
-- before it is sent. Taking more than the bucket holds leaves it below zero: the request waits until
-- the refill has paid for it, and every later request waits behind it. So the fleet, taken together,
-- never sends more than the burst plus the rate × the time.
create table embedsync.token_buckets (
  provider   text primary key,
  -- Tokens available at updated_at; below zero, tokens already promised to waiting requests.
  tokens     double precision not null,
  updated_at timestamptz not null
);

-- The bucket refilled to the present, locked for the rest of the calling transaction.
create function embedsync.refilled_bucket(p_provider text, p_per_second double precision, p_burst double precision)
returns double precision language plpgsql as $$
declare
  level double precision;
  since timestamptz;
begin
  insert into embedsync.token_buckets (provider, tokens, updated_at) values (p_provider, p_burst, clock_timestamp())
  on conflict (provider) do nothing;
  select tokens, updated_at into level, since from embedsync.token_buckets where provider = p_provider for update;
  return least(p_burst, level + p_per_second * greatest(0, extract(epoch from clock_timestamp() - since)));
end $$;

-- Takes p_need tokens for a request; returns the seconds to wait before sending it (0: at once). When
-- the wait would be longer than p_max_wait seconds, takes nothing and returns that wait: the caller
-- backs off and asks again later, instead of holding a slot (and its timeout) that long.
create function embedsync.take_tokens(p_provider text, p_need double precision, p_per_second double precision, p_burst double precision, p_max_wait double precision)
returns double precision language plpgsql as $$
declare
  level double precision := embedsync.refilled_bucket(p_provider, p_per_second, p_burst) - p_need;
  wait double precision := greatest(0, -level / p_per_second);
begin
  if wait <= p_max_wait then
    update embedsync.token_buckets set tokens = level, updated_at = clock_timestamp() where provider = p_provider;
  end if;
  return wait;
end $$;

-- The provider answered "too many requests, retry in p_seconds": nobody sends before then.
create function embedsync.hold_back_tokens(p_provider text, p_seconds double precision, p_per_second double precision, p_burst double precision)
returns void language plpgsql as $$
declare
  level double precision := least(embedsync.refilled_bucket(p_provider, p_per_second, p_burst), -p_seconds * p_per_second);
begin
  update embedsync.token_buckets set tokens = level, updated_at = clock_timestamp() where provider = p_provider;
end $$;
