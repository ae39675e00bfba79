-- Whole-table work: where a backfill is, and how far it got (docs/architecture.md, decision 7).
alter table embedsync.pipelines
  add column synced_rows     bigint not null default 0,
  add column total_rows      bigint,
  add column backfill_cursor text,
  add column last_synced_at  timestamptz,
  add column tokens_used     bigint not null default 0,
  -- A changed embedding config waits here, with its generation, until a re-embed swaps it in.
  add column pending_config     jsonb,
  add column pending_generation integer;

comment on column embedsync.pipelines.state is
  'active: following changes; backfilling: a backfill runs; pending_rebackfill: the config changed and a re-embed is due; swapping: a re-embed builds the next generation';

-- The facts `npm run status` shows, for those who prefer SQL.
create view embedsync.pipeline_status as
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
       coalesce(d.dead_letters, 0)              as dead_letters
  from embedsync.pipelines p
  left join (select pipeline, count(*) as backlog, min(enqueued_at) as oldest
               from embedsync.outbox group by pipeline) o on o.pipeline = p.name
  left join (select pipeline, count(*) as dead_letters
               from embedsync.dead_letters group by pipeline) d on d.pipeline = p.name;
