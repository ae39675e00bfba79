-- A pipeline may write its vectors into a column of its source table (docs/architecture.md,
-- decision 18). The status view says where each pipeline's vectors are: that column, or the vector
-- table as before (a column pipeline's vector_table is the record of what was embedded).
create or replace view embedsync.pipeline_status as
select p.name                                   as pipeline,
       p.source_schema || '.' || p.source_table as source_table,
       p.vector_schema || '.' || p.vector_table as vector_table,
       p.state,
       p.sync_paused,
       p.generation,
       p.pending_generation,
       p.config -> 'embedding' ->> 'provider'   as provider,
       p.config -> 'embedding' ->> 'model'      as model,
       (p.config -> 'embedding' ->> 'dimensions')::int as dimensions,
       p.synced_rows,
       p.total_rows,
       p.last_synced_at,
       p.tokens_used,
       coalesce(o.backlog, 0)                   as outbox_backlog,
       now() - o.oldest                         as oldest_change_age,
       coalesce(d.dead_letters, 0)              as dead_letters,
       coalesce(h.failures_in_a_row, 0)         as provider_failures_in_a_row,
       h.last_error                             as provider_last_error,
       h.last_error_at                          as provider_last_error_at,
       h.last_success_at                        as provider_last_success_at,
       (p.config -> 'embedding' ->> 'requestsPerMinute')::int as requests_per_minute,
       (p.config -> 'embedding' ->> 'tokensPerMinute')::int   as tokens_per_minute,
       coalesce(s.stuck_batches, 0)             as stuck_batches,
       s.stuck_since,
       p.state_reason,
       coalesce(l.tokens_today, 0)              as tokens_today,
       coalesce(l.tokens_30_days, 0)            as tokens_30_days,
       coalesce(l.tokens_total, 0)              as tokens_total,
       coalesce(l.texts_reused, 0)              as texts_reused,
       case when p.config -> 'destination' ->> 'column' is not null
            then p.source_schema || '.' || p.source_table || '.' || (p.config -> 'destination' ->> 'column')
            else p.vector_schema || '.' || p.vector_table end as destination
  from embedsync.pipelines p
  left join (select pipeline, sum(coalesce(cardinality(pks), 1)) as backlog, min(enqueued_at) as oldest
               from embedsync.outbox group by pipeline) o on o.pipeline = p.name
  left join (select pipeline, count(*) as dead_letters
               from embedsync.dead_letters group by pipeline) d on d.pipeline = p.name
  left join embedsync.provider_health h on h.pipeline = p.name
  left join (select pipeline, count(distinct batch_id) as stuck_batches, min(since) as stuck_since
               from embedsync.stuck_batches group by pipeline) s on s.pipeline = p.name
  left join (select pipeline,
                    sum(tokens) filter (where day = (now() at time zone 'utc')::date) as tokens_today,
                    sum(tokens) filter (where day > (now() at time zone 'utc')::date - 30) as tokens_30_days,
                    sum(tokens) as tokens_total,
                    sum(reused) as texts_reused
               from embedsync.token_ledger group by pipeline) l on l.pipeline = p.name;
