-- Stuck work where SQL sees it: every failed attempt of a batch's stage (fetch, chunk, embed, write, and a
-- table walk's scan, checkpoint, …) is recorded here by the activity, and cleared when the stage succeeds
-- or the batch ends (written, dead-lettered, its generation dropped). Until now the reason lived only in
-- the Web UI's pending activities, and status read "synced 100%".
create table embedsync.batch_failures (
  pipeline        text not null references embedsync.pipelines (name) on delete cascade,
  -- The staging tables' batch id; for a walk's own stages (scan, checkpoint) its workflow id.
  batch_id        text not null,
  stage           text not null,
  workflow_id     text not null,
  run_id          text,
  -- The activity's attempt number: failures in a row of this stage.
  attempts        integer not null,
  error_class     text not null,
  last_error      text not null,
  -- False: Temporal does not try again (wrong dimensions, bad credentials, …).
  retryable       boolean not null,
  first_failed_at timestamptz not null default now(),
  last_failed_at  timestamptz not null default now(),
  primary key (pipeline, batch_id, stage)
);
create index batch_failures_last_failed_at on embedsync.batch_failures (last_failed_at);

-- A stage is stuck once it failed this many attempts in a row (fewer: retries going their normal way).
create function embedsync.stuck_after_attempts() returns integer language sql immutable as 'select 3';

-- A row not updated for longer than this belongs to a workflow that no longer runs (terminated, timed
-- out, failed for good): a retrying stage fails again well within it (an attempt may run for the
-- activities' 10-minute start-to-close timeout, then wait at most the 2-minute maximum retry interval).
create function embedsync.batch_failure_expiry() returns interval language sql immutable
  as $$ select interval '15 minutes' $$;

create view embedsync.stuck_batches as
select pipeline, batch_id, workflow_id, stage, attempts, error_class, last_error, retryable,
       first_failed_at as since, last_failed_at, run_id
  from embedsync.batch_failures
 where (attempts >= embedsync.stuck_after_attempts() or not retryable)
   and last_failed_at > now() - embedsync.batch_failure_expiry();

-- Provider health said "retrying" after a failure that is never retried (wrong dimensions, …).
alter table embedsync.provider_health add column last_error_retryable boolean;

-- Written by the pipeline state machine; added here too, so this view works whichever migration came first.
alter table embedsync.pipelines add column if not exists state_reason text;

create or replace view embedsync.pipeline_status as
select p.name                                   as pipeline,
       p.source_schema || '.' || p.source_table as source_table,
       p.vector_schema || '.' || p.vector_table as vector_table,
       p.state,
       p.sync_paused,
       p.generation,
       p.pending_generation,
       p.config -> 'embedding' ->> 'provider'   as provider,
       p.config -> 'embedding' ->> 'model'      as model,
       (p.config -> 'embedding' ->> 'dimensions')::int as dimensions,
       p.synced_rows,
       p.total_rows,
       p.last_synced_at,
       p.tokens_used,
       coalesce(o.backlog, 0)                   as outbox_backlog,
       now() - o.oldest                         as oldest_change_age,
       coalesce(d.dead_letters, 0)              as dead_letters,
       coalesce(h.failures_in_a_row, 0)         as provider_failures_in_a_row,
       h.last_error                             as provider_last_error,
       h.last_error_at                          as provider_last_error_at,
       h.last_success_at                        as provider_last_success_at,
       (p.config -> 'embedding' ->> 'requestsPerMinute')::int as requests_per_minute,
       (p.config -> 'embedding' ->> 'tokensPerMinute')::int   as tokens_per_minute,
       coalesce(s.stuck_batches, 0)             as stuck_batches,
       s.stuck_since,
       p.state_reason
  from embedsync.pipelines p
  left join (select pipeline, count(*) as backlog, min(enqueued_at) as oldest
               from embedsync.outbox group by pipeline) o on o.pipeline = p.name
  left join (select pipeline, count(*) as dead_letters
               from embedsync.dead_letters group by pipeline) d on d.pipeline = p.name
  left join embedsync.provider_health h on h.pipeline = p.name
  left join (select pipeline, count(distinct batch_id) as stuck_batches, min(since) as stuck_since
               from embedsync.stuck_batches group by pipeline) s on s.pipeline = p.name;
