-- A pipeline may embed nothing and only deliver its table's changes to its sinks
-- (docs/architecture.md, decision 23): such a pipeline has no vector table, which is how the catalog
-- tells it apart. Its config has neither `embed` nor `embedding`, so pipeline_status shows no
-- provider, model or destination for it.
alter table embedsync.pipelines
  alter column vector_schema drop not null,
  alter column vector_table drop not null;

alter table embedsync.pipelines
  add constraint pipelines_vector_table_whole
  check ((vector_schema is null) = (vector_table is null));

-- A TRUNCATE reaches the sinks as an event with `truncated: true` (its rows' keys are not known);
-- a refused one is kept as such.
alter table embedsync.failed_deliveries add column truncated boolean not null default false;
