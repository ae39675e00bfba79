-- Change events delivered to a pipeline's sinks (docs/architecture.md, decision 23; owned by
-- src/db/deliveries.ts). A delivery a sink refused for good (a webhook's 4xx other than 408 and
-- 429) is kept here, one row per delivery id, with the keys and operations it carried (never row
-- content, never a secret) and the sink's last error. The poller sends it again after a wait that
-- doubles with each attempt, `embedsync redeliver` at once; a delivery sent is deleted.
create table embedsync.failed_deliveries (
  delivery_id  text primary key,
  pipeline     text not null,
  sink         integer not null,
  generation   integer not null,
  changes      jsonb not null,
  error        text not null,
  attempts     integer not null default 1,
  failed_at    timestamptz not null default now(),
  retry_at     timestamptz not null
);
create index failed_deliveries_due on embedsync.failed_deliveries (retry_at);
create index failed_deliveries_pipeline on embedsync.failed_deliveries (pipeline);
