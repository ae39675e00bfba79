-- One word for the re-embed: its states are reembed_pending (was pending_rebackfill) and reembedding (was
-- swapping). "Swap" stays the name of its last step alone, the one transaction that renames
-- <vector table>_swap to the live table. Same meanings, new names: state_since keeps its time.
alter table embedsync.pipelines disable trigger pipeline_state_since;

update embedsync.pipelines
   set state = case state when 'pending_rebackfill' then 'reembed_pending'
                          when 'swapping' then 'reembedding'
                          else state end,
       held_state = case held_state when 'pending_rebackfill' then 'reembed_pending'
                                    when 'swapping' then 'reembedding'
                                    else held_state end
 where state in ('pending_rebackfill', 'swapping') or held_state in ('pending_rebackfill', 'swapping');

alter table embedsync.pipelines enable trigger pipeline_state_since;

comment on column embedsync.pipelines.state is
  'active: following changes; backfilling: a backfill runs; reembed_pending: the embedding config changed and '
  'a re-embed is due; reembedding: a re-embed builds the next generation; schema_changed: the source table '
  'lost or changed a column the pipeline reads (see state_reason); source_missing: the source table is gone';

comment on column embedsync.pipelines.held_state is
  'While schema_changed or source_missing: the state to return to once the source table is in shape again';

-- Outside a hold there is no state to return to and no reason to give (a re-embed cancelled while held
-- used to leave both behind).
update embedsync.pipelines set held_state = null, state_reason = null
 where (held_state is not null or state_reason is not null) and state not in ('schema_changed', 'source_missing');

-- The states are a closed set.
alter table embedsync.pipelines
  add constraint pipelines_state_known check (state in
    ('active', 'backfilling', 'reembed_pending', 'reembedding', 'schema_changed', 'source_missing')),
  add constraint pipelines_held_state_known check (held_state in
    ('active', 'backfilling', 'reembed_pending', 'reembedding'));
