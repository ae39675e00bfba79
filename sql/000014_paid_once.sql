-- Content-addressed texts (docs/architecture.md, decision 15): one row per exact chunk text and the
-- model settings that decide its vector, so a text is paid for once whichever batch, row, pipeline
-- or worker asks for it. While a batch embeds a text the row holds its lease (holder, lease_until)
-- and no vector; the others wait for it or take it over once the lease has expired. Then the row
-- holds the vector until the retention is over and the poller prunes it (src/db/embedded-texts.ts).
--
-- Unlogged: it is a cache. After a crash PostgreSQL empties it, and the durable copies are in the
-- staging and vector tables; writing it costs no WAL.
create unlogged table embedsync.embedded_texts (
  -- sha256 of the model settings (provider, model, dimensions, input type, normalisation, server)
  -- and the exact chunk text: one 32-byte key instead of the text itself.
  key         bytea       primary key,
  -- Null while a batch holds the lease; any dimension, as pipelines differ.
  embedding   vector,
  -- The batch (workflow and activity) embedding it; a retry of the same batch takes its own lease
  -- back at once. Null once the vector is known.
  holder      text,
  lease_until timestamptz,
  -- When the vector arrived (or the lease was taken): the retention counts from here.
  stored_at   timestamptz not null default now(),
  check ((embedding is null) = (holder is not null))
);

-- Rows arrive in time order, so a BRIN index finds the expired ones for almost nothing per insert.
create index embedded_texts_stored_at on embedsync.embedded_texts using brin (stored_at);

comment on table embedsync.embedded_texts is
  'Vectors of chunk texts by model settings and text hash, and leases on texts being embedded';

-- A claim's batches, recorded before their workflows start (docs/architecture.md, decision 4): the
-- poller replaces the rows it claimed with one row per planned batch, stamped with the batch's
-- workflow id, and commits; then it starts the workflows and deletes the stamped rows. A poller that
-- dies in between leaves the stamped rows, and the next claim starts (or finds started) the very
-- same workflows instead of planning new ones from a different set of rows.
alter table embedsync.outbox
  add column started_as text,
  add column started_at timestamptz,
  add constraint outbox_stamped check ((started_as is null) = (started_at is null));
