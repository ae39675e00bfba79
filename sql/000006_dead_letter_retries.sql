-- A batch that failed for good (content_hash '': quota exhausted, credentials refused, …) is sent round
-- again by the poller, less and less often, until it succeeds; the write stage then deletes the letter.
-- A row the provider refused (content_hash set) waits for its content to change instead.
alter table embedsync.dead_letters
  add column attempts    integer not null default 1,
  add column requeued_at timestamptz;
