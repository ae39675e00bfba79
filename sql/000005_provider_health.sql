-- How each pipeline's embedding provider has been answering: a provider that keeps failing (down,
-- refusing the credentials, out of quota, throttling) shows in `npm run status` and in the view, beside
-- the rate limits the pipeline declares.
create table embedsync.provider_health (
  pipeline          text primary key references embedsync.pipelines (name) on delete cascade,
  -- Requests that failed since the last one that succeeded (a refused input is the input's fault: not counted).
  failures_in_a_row int not null default 0,
  last_error        text,
  last_error_at     timestamptz,
  last_success_at   timestamptz
);

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
       (p.config -> 'embedding' ->> 'tokensPerMinute')::int   as tokens_per_minute
  from embedsync.pipelines p
  left join (select pipeline, count(*) as backlog, min(enqueued_at) as oldest
               from embedsync.outbox group by pipeline) o on o.pipeline = p.name
  left join (select pipeline, count(*) as dead_letters
               from embedsync.dead_letters group by pipeline) d on d.pipeline = p.name
  left join embedsync.provider_health h on h.pipeline = p.name;
