-- The catalog, the outbox, the staging tables and the dead letters.
-- Data moves between the stages of a sync through the staging tables (claim-check):
-- workflow history only ever carries keys, counts and hashes.

create extension if not exists vector;

create table embedsync.pipelines (
  name            text primary key check (name ~ '^[a-z][a-z0-9_]{0,39}$'),
  source_schema   text not null,
  source_table    text not null,
  -- [{ "name": "id", "type": "bigint" }, …] in key order
  primary_key     jsonb not null,
  vector_schema   text not null,
  vector_table    text not null,
  -- the validated pipeline config; never holds secrets (those come from the environment)
  config          jsonb not null,
  generation      integer not null default 1,
  sync_paused     boolean not null default false,
  state           text not null default 'active',
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  unique (vector_schema, vector_table)
);

-- One row per captured change. Rows leave only when a workflow for them has started.
create table embedsync.outbox (
  id          bigint generated always as identity primary key,
  pipeline    text not null,
  -- the source row's primary key as text: the value for one column, a JSON array for several;
  -- '*' with op 'T' (TRUNCATE) means "every key"
  pk          text not null,
  op          "char" not null check (op in ('I', 'U', 'D', 'T')),
  enqueued_at timestamptz not null default clock_timestamp()
);
create index outbox_pipeline_id on embedsync.outbox (pipeline, id);

-- Stage 1 (fetch): one row per source key of a batch.
create table embedsync.staged_rows (
  batch_id      text not null,
  pk            text not null,
  -- 'embed': content changed, needs chunks and vectors; 'keep': content unchanged (metadata may
  -- have moved); 'delete': the source row is gone
  action        text not null check (action in ('embed', 'keep', 'delete')),
  document      text,
  content_hash  text,
  generation    integer not null,
  staged_at     timestamptz not null default now(),
  primary key (batch_id, pk)
);

-- Stages 2 and 3 (chunk, embed): the chunks of each 'embed' row, and their vectors once embedded.
create table embedsync.staged_chunks (
  batch_id     text not null,
  pk           text not null,
  chunk_index  integer not null,
  chunk        text not null,
  embedding    vector,
  primary key (batch_id, pk, chunk_index)
);

-- Rows the provider refuses for good (invalid input and the like): kept with their error.
create table embedsync.dead_letters (
  id            bigint generated always as identity primary key,
  pipeline      text not null,
  pk            text not null,
  generation    integer not null,
  content_hash  text,
  error         text not null,
  failed_at     timestamptz not null default now(),
  unique (pipeline, pk, content_hash)
);

-- Facts about this installation. instance_id keeps the workflow ids of two databases that share a
-- Temporal namespace apart.
create table embedsync.settings (
  key   text primary key,
  value text not null
);
insert into embedsync.settings (key, value) values ('instance_id', gen_random_uuid()::text);
