-- A batch-mode backfill's parts: what each one sent to a provider's Batch API, recorded before the
-- provider's batch is created so that a retry after a kill finds that batch instead of paying for a
-- second one (docs/architecture.md, decision 17). The keys and the content hashes they were read
-- with are kept in submission order: a request line's custom_id is the row's place in them.
create table embedsync.batch_parts (
  -- The backfill that owns the part: stable across its continue-as-new runs.
  backfill          text not null,
  part              int not null check (part >= 0),
  pipeline          text not null references embedsync.pipelines (name) on delete cascade,
  generation        int not null,
  keys              text[] not null,
  content_hashes    text[] not null,
  -- The last key the part's scan went through (rows found unchanged included), and how many keys.
  cursor            text,
  scanned           int not null,
  inputs            int not null,
  tokens            bigint not null,
  -- Each submission names itself in the batch's metadata as <backfill>/<part>/<attempt>; a part
  -- the provider refused for its enqueued-token limit is submitted again with the next attempt.
  attempt           int not null default 1,
  -- recorded: nothing created yet (or not known to be); submitted: provider_batch_id runs;
  -- written: its vectors are in the vector table; failed, cancelled: over without them.
  status            text not null default 'recorded'
                      check (status in ('recorded', 'submitted', 'written', 'failed', 'cancelled')),
  provider_batch_id text,
  provider_status   text,
  completed_lines   int not null default 0,
  failed_lines      int not null default 0,
  -- What writing it found: rows written, rows left to their sync, lines dead-lettered, tokens paid.
  written           int not null default 0,
  stale             int not null default 0,
  dead_lettered     int not null default 0,
  paid_tokens       bigint not null default 0,
  error             text,
  recorded_at       timestamptz not null default now(),
  updated_at        timestamptz not null default now(),
  primary key (backfill, part)
);

create index batch_parts_pipeline on embedsync.batch_parts (pipeline, recorded_at);

comment on table embedsync.batch_parts is
  'A batch-mode backfill''s parts: the rows each sent to the provider''s Batch API and that batch''s state';
