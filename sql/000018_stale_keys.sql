-- Clearing stale vectors (docs/architecture.md, decision 19; owned by src/db/stale-keys.ts): for a
-- pipeline with onContentChange: clear, the keys whose content changed and whose vectors have not
-- been written again since. The capture functions add a row in the user's transaction, with its
-- transaction id; the view and search leave out every key with a row. A writer deletes the rows of
-- the keys it wrote whose transaction its read of the source could see. Plain inserts only: no
-- unique constraint, so a user's write never waits on a row an embedsync writer holds, nor locks
-- one. pk '*' stands for every key (a TRUNCATE).
create table embedsync.stale_keys (
  pipeline text not null,
  pk       text not null,
  xid      xid8 not null
);
create index stale_keys_pipeline_pk on embedsync.stale_keys (pipeline, pk);

-- In column mode with clear, a pipeline also has a row-level function, capture_<pipeline>_clear,
-- that names the columns it compares: it probes like the others once a column it names may be gone.
create or replace function embedsync.probe_capture(pipeline text, probe boolean) returns void
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
  event text;
begin
  foreach event in array array['insert', 'update', 'delete', 'clear'] loop
    continue when to_regprocedure(format('embedsync.%I()', 'capture_' || pipeline || '_' || event)) is null;
    execute format('alter function embedsync.%I() %s', 'capture_' || pipeline || '_' || event,
                   case when probe then 'set embedsync.capture_probe = on'
                        else 'reset embedsync.capture_probe' end);
  end loop;
end $$;
