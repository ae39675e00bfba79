-- A table in a publication that publishes updates and deletes must have a replica identity, or every
-- UPDATE and DELETE of it fails ("cannot update table … because it does not have a replica identity
-- and publishes updates"). A logically captured table (decision 29) loses it when its primary key is
-- dropped, when it is set to REPLICA IDENTITY NOTHING, or when the index of REPLICA IDENTITY USING
-- INDEX is dropped. The event trigger below takes such a table out of the publication of logical
-- capture in the transaction of that DDL, so the application's writes go on; the schema check then
-- holds its pipelines until the table has an identity again and apply puts it back (a backfill
-- catches up the changes made meanwhile, which nothing captured).

-- Why the table's updates and deletes cannot be published, or null when they can.
create function embedsync.replica_identity_gap(relid oid) returns text
language sql stable set search_path = pg_catalog, pg_temp as $$
  select case c.relreplident
           when 'f' then null
           when 'n' then 'its replica identity is NOTHING'
           when 'd' then case when exists (select 1 from pg_index i
                                            where i.indrelid = c.oid and i.indisprimary)
                              then null else 'it has no primary key' end
           when 'i' then case when exists (select 1 from pg_index i
                                            where i.indrelid = c.oid and i.indisreplident)
                              then null else 'the index of its replica identity is gone' end
         end
    from pg_class c where c.oid = $1
$$;

-- After a command that may have taken a table's replica identity: every table of the publication
-- that has none now leaves it. Never fails the command (its writes would fail anyway).
create function embedsync.guard_replica_identity() returns event_trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  rel regclass;
begin
  for rel in select r.prrelid::regclass
               from pg_publication_rel r
               join pg_publication p on p.oid = r.prpubid
              where p.pubname = 'embedsync_capture'
                and embedsync.replica_identity_gap(r.prrelid) is not null loop
    execute format('alter publication embedsync_capture drop table only %s', rel);
  end loop;
exception when others then
  raise warning 'embedsync could not take a table without a replica identity out of its publication after %: %',
    tg_tag, sqlerrm;
end $$;

do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    -- ALTER TABLE … DROP CONSTRAINT, DROP COLUMN, REPLICA IDENTITY; DROP INDEX of a replica
    -- identity's index.
    create event trigger embedsync_replica_identity_guard on ddl_command_end
      when tag in ('ALTER TABLE', 'DROP INDEX')
      execute function embedsync.guard_replica_identity();
    alter event trigger embedsync_replica_identity_guard enable always;
  end if;
end $$;
