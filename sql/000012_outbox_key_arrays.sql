-- One outbox row per capturing statement and operation: a statement that changes many rows queues
-- their keys as one array (pks) instead of one row per key, which made a 100,000-row UPDATE cost
-- three times its own time. A single key still goes in pk, as every other writer queues it, so rows
-- queued before this migration, and by verify --requeue or a dead letter's retry, stay as they are.
-- The poller expands the arrays and takes its claim limit in keys (src/db/outbox.ts).
alter table embedsync.outbox
  alter column pk drop not null,
  add column pks text[],
  add constraint outbox_one_form check ((pk is null) <> (pks is null));

-- Nothing reads the outbox by pipeline often enough to pay for this index on every captured write
-- (dropping a pipeline's queue and the status view's backlog read the whole table either way).
drop index embedsync.outbox_pipeline_id;

-- One row per queued key, whichever form it was queued in.
create view embedsync.outbox_keys as
select o.id, k.position, o.pipeline, k.pk, o.op, o.enqueued_at
  from embedsync.outbox o
 cross join lateral unnest(coalesce(o.pks, array[o.pk])) with ordinality as k(pk, position);

comment on column embedsync.outbox.pks is
  'The keys of one statement''s rows, when it changed more than one (pk is then null); '
  'a claim that takes only some of them leaves the rest here';

-- The backlog counts keys, not rows.
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
  left join (select pipeline, sum(coalesce(cardinality(pks), 1)) as backlog, min(enqueued_at) as oldest
               from embedsync.outbox group by pipeline) o on o.pipeline = p.name
  left join (select pipeline, count(*) as dead_letters
               from embedsync.dead_letters group by pipeline) d on d.pipeline = p.name
  left join embedsync.provider_health h on h.pipeline = p.name
  left join (select pipeline, count(distinct batch_id) as stuck_batches, min(since) as stuck_since
               from embedsync.stuck_batches group by pipeline) s on s.pipeline = p.name;

-- The capture functions' column probe (src/capture/triggers.ts) cost about as much as their outbox
-- insert on a single-row write. Where an event trigger can watch the DDL (creating one needs a
-- superuser), it turns the probe on for a pipeline in the very transaction that drops or renames a
-- column its capture names, before any write can call the capture again; until then the functions
-- skip the probe. Without the event trigger they probe on every call, as before.

-- The columns each pipeline's capture functions name: its key and the columns it watches.
create table embedsync.capture_columns (
  pipeline text primary key references embedsync.pipelines (name) on delete cascade,
  columns  name[] not null
);

-- Whether a pipeline's capture functions may skip the probe: both event triggers below are on in
-- every session (ENABLE ALWAYS), and every column the functions name exists now.
create function embedsync.capture_guarded(pipeline text) returns boolean
language sql stable set search_path = pg_catalog, pg_temp as $$
  select (select count(*) from pg_event_trigger
           where evtname in ('embedsync_capture_guard', 'embedsync_capture_guard_drop')
             and evtenabled = 'A') = 2
     and exists (select 1
                   from embedsync.capture_columns c
                   join embedsync.pipelines p on p.name = c.pipeline
                  where c.pipeline = $1
                    and (select count(*) from pg_attribute a
                          where a.attrelid = p.source_relid and a.attnum > 0 and not a.attisdropped
                            and a.attname = any (c.columns)) = cardinality(c.columns))
$$;

-- Turns the probe on or off in a pipeline's capture functions.
create function embedsync.probe_capture(pipeline text, probe boolean) returns void
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
  event text;
begin
  foreach event in array array['insert', 'update', 'delete'] loop
    execute format('alter function embedsync.%I() %s', 'capture_' || pipeline || '_' || event,
                   case when probe then 'set embedsync.capture_probe = on'
                        else 'reset embedsync.capture_probe' end);
  end loop;
end $$;

-- After a command that may have dropped or renamed a column: every pipeline that lost a column its
-- capture names probes from now on. Never fails the command.
create function embedsync.guard_capture() returns event_trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  pipeline text;
begin
  for pipeline in select c.pipeline from embedsync.capture_columns c
                   where not embedsync.capture_guarded(c.pipeline) loop
    perform embedsync.probe_capture(pipeline, true);
  end loop;
exception when others then
  raise warning 'embedsync could not check its capture functions after %: %', tg_tag, sqlerrm;
end $$;

do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    -- Renames (and drops) of columns …
    create event trigger embedsync_capture_guard on ddl_command_end
      when tag in ('ALTER TABLE', 'ALTER FOREIGN TABLE', 'ALTER TYPE')
      execute function embedsync.guard_capture();
    -- … and every command that drops anything, a column with DROP TYPE … CASCADE among them.
    create event trigger embedsync_capture_guard_drop on sql_drop
      execute function embedsync.guard_capture();
    -- Also under session_replication_role = replica, where the capture's own triggers do not fire
    -- but DDL still changes the table.
    alter event trigger embedsync_capture_guard enable always;
    alter event trigger embedsync_capture_guard_drop enable always;
  end if;
end $$;
