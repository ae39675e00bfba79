-- A source table that changes shape under its pipeline. The table is tracked by its oid, so a rename or a
-- move to another schema is followed; a pipeline whose table lost a column it reads is held (its changes
-- wait in the outbox) with the reason and the fix, until the table or the config is put right.
alter table embedsync.pipelines
  add column source_relid   oid,
  -- The attribute numbers of the columns the pipeline reads, {"body": 3, …}: a renamed column keeps its number.
  add column source_columns jsonb,
  -- Why the pipeline is in its state, when that needs saying (schema_changed, source_missing): what changed
  -- and the command that fixes it.
  add column state_reason   text,
  add column state_since    timestamptz not null default now(),
  -- While held: the state to return to once the table is in shape again.
  add column held_state     text;

update embedsync.pipelines
   set source_relid = to_regclass(quote_ident(source_schema) || '.' || quote_ident(source_table))::oid,
       state_since = updated_at;

-- Whoever changes the state, state_since says since when.
create function embedsync.pipeline_state_since() returns trigger language plpgsql as $$
begin
  if new.state is distinct from old.state then
    new.state_since := now();
  end if;
  return new;
end $$;

create trigger pipeline_state_since before update of state on embedsync.pipelines
  for each row execute function embedsync.pipeline_state_since();

comment on column embedsync.pipelines.state is
  'active: following changes; backfilling: a backfill runs; pending_rebackfill: the config changed and a '
  're-embed is due; swapping: a re-embed builds the next generation; schema_changed: the source table lost '
  'or changed a column the pipeline reads (see state_reason); source_missing: the source table is gone';
