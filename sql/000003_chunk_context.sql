-- The part of a row's document repeated at the head of each of its chunks (embed.columns[].repeat).
alter table embedsync.staged_rows add column context text;
