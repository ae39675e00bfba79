-- Keys as text in one canonical form. Until now a key was rendered under the writing session's
-- settings, so a timestamptz key written under TimeZone UTC and updated under Asia/Tokyo had two key
-- texts, and two sets of vectors. The capture functions and embedsync's connections now render keys
-- under KEY_TEXT_SETTINGS (src/db/pool.ts); this rewrites the keys already stored to that form, for
-- the pipelines whose key types print differently under other settings. Keys that were already
-- canonical (the usual case: sessions left at the server's defaults) are scanned but not written.
set local TimeZone = 'UTC';
set local DateStyle = 'ISO, YMD';
set local IntervalStyle = 'postgres';
set local extra_float_digits = 1;
set local bytea_output = 'hex';

-- Whether a type's text form depends on those settings: itself, or through a domain's base type, an
-- array's elements, a range's or multirange's subtype, or a composite's fields.
create function pg_temp.embedsync_key_depends_on_settings(root regtype) returns boolean
language sql stable as $$
  with recursive parts(type) as (
    select root::oid
    union
    select c.type
      from parts p
      join pg_catalog.pg_type t on t.oid = p.type
      cross join lateral (
        select t.typbasetype where t.typbasetype <> 0
        union all select t.typelem where t.typcategory = 'A' and t.typelem <> 0
        union all select r.rngsubtype from pg_catalog.pg_range r where r.rngtypid = t.oid
        union all select r.rngtypid from pg_catalog.pg_range r where r.rngmultitypid = t.oid
        union all select a.atttypid from pg_catalog.pg_attribute a
                   where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped
      ) c(type)
  )
  select exists (
    select 1 from parts
     where type = any ('{timestamptz,timestamp,date,time,timetz,interval,float4,float8,bytea}'::regtype[]::oid[]))
$$;

do $migration$
declare
  p record;
  expr text;
  tbl text;
  dropped bigint;
  rewritten bigint;
begin
  for p in select name, vector_schema, vector_table, primary_key from embedsync.pipelines order by name loop
    continue when not exists (
      select 1 from jsonb_array_elements(p.primary_key) k
       where pg_temp.embedsync_key_depends_on_settings(pg_catalog.to_regtype(k ->> 'type')));

    -- The key text as the capture functions now write it: a lone value's text, or a JSON array.
    if jsonb_array_length(p.primary_key) = 1 then
      expr := format('(k)::%s::text', p.primary_key -> 0 ->> 'type');
    else
      select format('jsonb_build_array(%s)::text',
                    string_agg(format('((k)::jsonb ->> %s)::%s', i - 1, e ->> 'type'), ', ' order by i))
        into expr
        from jsonb_array_elements(p.primary_key) with ordinality as x(e, i);
    end if;
    -- Keys written under another DateStyle order (01/02/2024) do not parse as YMD; they are read as
    -- MDY, Postgres' default order, then as DMY. A key none of them parses yields null.
    execute format($f$
      create or replace function pg_temp.embedsync_canonical_key(k text) returns text
      language plpgsql as $body$
      declare
        style text;
      begin
        foreach style in array array['ISO, YMD', 'ISO, MDY', 'ISO, DMY'] loop
          begin
            perform pg_catalog.set_config('DateStyle', style, true);
            return %s;
          exception when data_exception then
            null;
          end;
        end loop;
        return null;
      end
      $body$$f$, expr);

    foreach tbl in array array[p.vector_table, p.vector_table || '_swap'] loop
      -- The swap table exists only while a re-embed is running.
      continue when to_regclass(format('%I.%I', p.vector_schema, tbl)) is null;
      -- One set of vectors per key: the canonical set if there is one, else the newest.
      execute format(
        'create temp table embedsync_keys on commit drop as
           select pk, canonical, row_number() over (
                    partition by canonical order by pk = canonical desc, latest desc, pk) as rank
             from (select pk, pg_temp.embedsync_canonical_key(pk) as canonical, max(embedded_at) as latest
                     from %I.%I group by pk) k',
        p.vector_schema, tbl);
      execute format(
        'delete from %I.%I v using embedsync_keys k where v.pk = k.pk and (k.canonical is null or k.rank > 1)',
        p.vector_schema, tbl);
      get diagnostics dropped = row_count;
      execute format(
        'update %I.%I v set pk = k.canonical from embedsync_keys k
          where v.pk = k.pk and k.rank = 1 and k.canonical <> k.pk',
        p.vector_schema, tbl);
      get diagnostics rewritten = row_count;
      raise notice '%.%: % vector rows rewritten to canonical keys, % duplicate or unreadable ones dropped',
        p.vector_schema, tbl, rewritten, dropped;
      drop table embedsync_keys;
    end loop;

    -- Queued changes and dead letters carry keys too; one the migration cannot read is dropped from
    -- the outbox rather than left to fail its batch (a backfill picks up its row).
    delete from embedsync.outbox
     where pipeline = p.name and op <> 'T' and pg_temp.embedsync_canonical_key(pk) is null;
    update embedsync.outbox set pk = pg_temp.embedsync_canonical_key(pk)
     where pipeline = p.name and op <> 'T' and pg_temp.embedsync_canonical_key(pk) <> pk;
    -- Of the letters for one key and content, the canonical one (else the newest) stays.
    delete from embedsync.dead_letters d
     using (select id, row_number() over (
                     partition by pg_temp.embedsync_canonical_key(pk), content_hash
                     order by pk = pg_temp.embedsync_canonical_key(pk) desc, id desc) as rank
              from embedsync.dead_letters where pipeline = p.name) r
     where d.id = r.id and r.rank > 1;
    update embedsync.dead_letters set pk = pg_temp.embedsync_canonical_key(pk)
     where pipeline = p.name and pg_temp.embedsync_canonical_key(pk) <> pk;
    perform pg_catalog.set_config('DateStyle', 'ISO, YMD', true);
  end loop;
end
$migration$;

drop function if exists pg_temp.embedsync_canonical_key(text);
drop function pg_temp.embedsync_key_depends_on_settings(regtype);
