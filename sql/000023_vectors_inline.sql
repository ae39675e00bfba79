-- Vectors stay in their rows up to 8160 bytes a row (docs/architecture.md, decision 32): pgvector's
-- types are stored out of line once a row passes about 2 KB (from about 500 dimensions), which costs
-- each write a TOAST insert and each index build or search a TOAST fetch. New vector tables are made
-- so (src/capture/vector-table.ts); this sets the tables that hold vectors already. It changes only
-- rows written from now on, and takes no lock that blocks reads or writes.
alter table embedsync.embedded_texts set (toast_tuple_target = 8160);
alter table embedsync.staged_chunks set (toast_tuple_target = 8160);

-- The vector tables of existing pipelines, where this role may change them: one it may not is left
-- as it was (with a notice), never a failed migration; a re-embed makes its next table inline.
do $$
declare
  t record;
begin
  for t in
    select format('%I.%I', p.vector_schema, p.vector_table) as name
      from embedsync.pipelines p
      join pg_namespace n on n.nspname = p.vector_schema
      join pg_class c on c.relnamespace = n.oid and c.relname = p.vector_table and c.relkind = 'r'
     where exists (select 1 from pg_attribute a
                    where a.attrelid = c.oid and a.attname = 'embedding' and not a.attisdropped)
  loop
    begin
      execute format('alter table %s set (toast_tuple_target = 8160)', t.name);
    exception when insufficient_privilege then
      raise notice 'embedsync: % keeps its vectors out of line (not its owner): %', t.name, sqlerrm;
    end;
  end loop;
end
$$;
