-- A 429's hold is kept as a time, not as a debt in the buckets. It was a level of -seconds × the rate
-- planned at the 429, so a plan whose rate changed during the hold stretched or shortened it: a
-- 0.5 s hold at 60,000 requests a minute became 50 s when the same 429 taught a limit of 600.
-- Now hold_back sets held_until (never earlier than a hold already there), take_turn waits at least
-- until it whatever the rates, and the levels are only the budgets.
--
-- A bucket's level is what it holds at its time: updated_at, or held_until while that is later.
-- So nothing refills a bucket during a hold: the requests that take their turns during it line up
-- after its end at the rate then planned, instead of all going the moment it ends.
alter table embedsync.rate_buckets add column held_until timestamptz;

comment on column embedsync.rate_buckets.held_until is
  'A 429 asked that nothing be sent before then (null: never held). While it is later than updated_at, level is what the bucket holds at held_until.';

-- The bucket refilled to p_now (to its hold's end, while held), locked for the rest of the calling
-- transaction. A bucket first used during a hold (a limit learned meanwhile) starts held and empty.
create or replace function embedsync.refilled_bucket(
  p_provider text, p_budget text, p_per_second double precision, p_burst double precision,
  p_now timestamptz default clock_timestamp())
returns double precision language plpgsql as $$
declare
  stored double precision;
  since timestamptz;
begin
  insert into embedsync.rate_buckets (provider, budget, level, updated_at, held_until)
  select p_provider, p_budget, case when max(held_until) > p_now then 0 else p_burst end, p_now, max(held_until)
    from embedsync.rate_buckets where provider = p_provider
  on conflict (provider, budget) do nothing;
  -- greatest() passes over a null held_until.
  select level, greatest(updated_at, held_until) into stored, since from embedsync.rate_buckets
   where provider = p_provider and budget = p_budget for update;
  return least(p_burst, stored + p_per_second * greatest(0, extract(epoch from p_now - since)));
end $$;

-- Seconds from p_now to the end of the bucket's hold; 0 when it is not held.
create function embedsync.held_for(p_provider text, p_budget text, p_now timestamptz)
returns double precision language sql as $$
  select coalesce(greatest(0, extract(epoch from held_until - p_now)), 0)::double precision
    from embedsync.rate_buckets where provider = p_provider and budget = p_budget;
$$;

-- Takes a request's turn: one request and p_tokens tokens, from each bucket whose rate is given (null:
-- no such limit). Returns the seconds to wait before sending (0: at once): to the end of any hold, then
-- for the budgets. When the wait would be longer than p_max_wait, takes nothing and returns that wait:
-- the caller backs off and asks again later, instead of holding a slot (and its timeout) that long.
create or replace function embedsync.take_turn(
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
    wait := greatest(wait, embedsync.held_for(p_provider, 'requests', p_now)
                           + greatest(0, -requests / p_requests_per_second));
  end if;
  if p_tokens_per_second is not null then
    tokens := embedsync.refilled_bucket(p_provider, 'tokens', p_tokens_per_second, p_tokens_burst, p_now) - p_tokens;
    wait := greatest(wait, embedsync.held_for(p_provider, 'tokens', p_now)
                           + greatest(0, -tokens / p_tokens_per_second));
  end if;
  if wait <= p_max_wait then
    if requests is not null then perform embedsync.set_bucket(p_provider, 'requests', requests, p_now); end if;
    if tokens is not null then perform embedsync.set_bucket(p_provider, 'tokens', tokens, p_now); end if;
  end if;
  return wait;
end $$;

-- Holds one bucket until p_seconds from p_now, or longer if it is held longer already. It holds
-- nothing at the hold's end beyond what was promised before: turns taken before the 429 go at their
-- times, and the refill at the present rate goes on paying for them during the hold, but no budget is
-- saved up for its end.
create function embedsync.hold_bucket(
  p_provider text, p_budget text, p_seconds double precision,
  p_per_second double precision, p_burst double precision, p_now timestamptz)
returns void language plpgsql as $$
declare
  current double precision := embedsync.refilled_bucket(p_provider, p_budget, p_per_second, p_burst, p_now);
  since timestamptz;
  held timestamptz;
begin
  select greatest(p_now, held_until) into since from embedsync.rate_buckets
   where provider = p_provider and budget = p_budget;
  held := greatest(since, p_now + p_seconds * interval '1 second');
  update embedsync.rate_buckets
     set level = least(0, current + p_per_second * extract(epoch from held - since)),
         updated_at = p_now, held_until = held
   where provider = p_provider and budget = p_budget;
end $$;

-- The provider answered "too many requests, retry in p_seconds": nobody sends before then, whatever
-- the rates are by then.
create or replace function embedsync.hold_back(
  p_provider text, p_seconds double precision,
  p_requests_per_second double precision, p_requests_burst double precision,
  p_tokens_per_second double precision, p_tokens_burst double precision,
  p_now timestamptz default clock_timestamp())
returns void language plpgsql as $$
begin
  if p_requests_per_second is not null then
    perform embedsync.hold_bucket(p_provider, 'requests', p_seconds, p_requests_per_second, p_requests_burst, p_now);
  end if;
  if p_tokens_per_second is not null then
    perform embedsync.hold_bucket(p_provider, 'tokens', p_seconds, p_tokens_per_second, p_tokens_burst, p_now);
  end if;
end $$;

-- The provider said it has only p_level left: a bucket (refilled to p_now) that holds more is
-- lowered to p_level. Returns whether it was. Never raises a bucket: the provider's word can only
-- make embedsync more careful than its own pacing. While the bucket is held, its level is for the
-- hold's end: p_level is what is left now, refilled until then but saved up no further than a hold
-- allows (so the 429 that set the hold, lowered by its own answer, is not held twice).
create or replace function embedsync.lower_bucket(
  p_provider text, p_budget text, p_per_second double precision, p_burst double precision,
  p_level double precision, p_now timestamptz default clock_timestamp())
returns boolean language plpgsql as $$
declare
  current double precision := embedsync.refilled_bucket(p_provider, p_budget, p_per_second, p_burst, p_now);
  held double precision := embedsync.held_for(p_provider, p_budget, p_now);
  allowed double precision := p_level;
begin
  if held > 0 then allowed := least(0, p_level + p_per_second * held); end if;
  if current <= allowed then return false; end if;
  perform embedsync.set_bucket(p_provider, p_budget, allowed, p_now);
  return true;
end $$;
