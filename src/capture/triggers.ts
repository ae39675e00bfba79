// A pipeline's capture: one statement-level trigger per event, reading transition tables, so a bulk
// write costs one INSERT … SELECT into the outbox, not one per row. No pg_notify: a notifying
// commit takes a cluster-wide lock until it is flushed, which serialised every capturing write in
// the benchmarks (single-row UPDATEs at 33% of trigger-free throughput, 87% without it); the poller
// looks every 100 ms instead, an index probe when the outbox is empty. The functions are SECURITY
// DEFINER so the user's roles need no rights on the embedsync schema. Nothing in them depends on
// the content of a row; a column dropped or renamed under them takes them to a path that names no
// column (found by a probe that event triggers switch on only when needed), and a retyped one still
// compares as text: they cannot make a user's write fail.
import { captureMode, destinationColumn, embedColumns } from '../config/pipeline.js';
import {
  isEventsPipeline,
  shadowColumnName,
  type AnyPipeline,
  type Pipeline,
} from '../db/catalog.js';
import { qualified, quoteIdent, quoteLiteral } from '../db/ident.js';
import { OUTBOX_INSERT, outboxKeysInsert } from '../db/outbox.js';
import { keyText, keyTextSettings } from '../db/source.js';
import { ALL_KEYS, marksChanges, staleKeysInsert } from '../db/stale-keys.js';

type Event = 'insert' | 'update' | 'delete' | 'truncate';
const EVENTS: readonly Event[] = ['insert', 'update', 'delete', 'truncate'];

const functionName = (pipeline: string, event: Event): string =>
  qualified('embedsync', `capture_${pipeline}_${event}`);
const triggerName = (pipeline: string, event: Event): string =>
  quoteIdent(`embedsync_${pipeline}_${event}`);

/**
 * Columns whose change must reach the vector table: what is embedded and what is kept as metadata,
 * by the live config and by a pending one (whose re-embed must not miss changes to its columns).
 */
export function watchedColumns(
  p: AnyPipeline | Pick<Pipeline, 'config' | 'pendingConfig'>,
): string[] {
  // An events-only pipeline delivers every updated row: it compares no columns.
  if ('eventsOnly' in p) return [];
  const configs = p.pendingConfig ? [p.config, p.pendingConfig] : [p.config];
  return [
    ...new Set(configs.flatMap((c) => [...embedColumns(c).map((e) => e.column), ...c.metadata])),
  ];
}

// The fast path names the source columns, so a dropped or renamed one would make it fail to plan;
// a function that may meet one first checks, with one probe by TG_RELID, that every column it names
// still exists.
const columnsPresent = (columns: readonly string[]): string =>
  `(select count(*) from pg_catalog.pg_attribute
      where attrelid = TG_RELID and attnum > 0 and not attisdropped
        and attname = any (array[${columns.map(quoteLiteral).join(', ')}]::name[])) = ${columns.length}`;

// Built-in types whose JSON text is not their text form. Others are not cast back: a user's type
// might not resolve under the functions' search_path, and for text, numbers, uuid, dates, intervals
// and enums the JSON text is the text form (arrays and domains of the types above are not: a rare
// key).
const CAST_FROM_JSON =
  /^((timestamp|time)(\(\d+\))? with(out)? time zone|boolean|real|double precision)$/;

/**
 * SQL for the key text of a row read as jsonb (`r`), the same text keyText gives for the row
 * itself.
 */
function keyTextFromJson(p: Pick<Pipeline, 'primaryKey'>, r: string): string {
  const [only, ...rest] = p.primaryKey;
  // to_jsonb renders a value the way jsonb_build_array does, but a lone key is its type's text
  // form.
  if (only && rest.length === 0) {
    const value = `(${r} ->> ${quoteLiteral(only.name)})`;
    return CAST_FROM_JSON.test(only.type) ? `${value}::${only.type}::text` : value;
  }
  return `jsonb_build_array(${p.primaryKey.map((k) => `${r} -> ${quoteLiteral(k.name)}`).join(', ')})::text`;
}

/**
 * Columns whose change makes a row's vectors stale when the live config clears (decision 19): what
 * it embeds. A metadata-only change hides nothing.
 */
const clearedColumns = (p: Pick<Pipeline, 'config'>): string[] => [
  ...new Set(embedColumns(p.config).map((e) => e.column)),
];

const hasKey = (p: Pick<Pipeline, 'primaryKey'>, r: string): string =>
  `${r} ?& array[${p.primaryKey.map((k) => quoteLiteral(k.name)).join(', ')}]`;

/**
 * The usual statement: names the columns it reads, and is planned only when it first runs. It queues
 * the statement's keys as one outbox row per operation (outboxKeysInsert), however many rows changed.
 */
function fastPath(p: AnyPipeline, event: Exclude<Event, 'truncate'>): string {
  const name = quoteLiteral(p.name);
  const keys = (alias: string, filter = ''): string =>
    `pg_catalog.array_agg(${keyText(p, alias)})${filter && ` filter (where ${filter})`}`;
  switch (event) {
    case 'insert':
      return `${outboxKeysInsert(name, `select ${keys('n')} as keys, 'I'::"char" as op from new_rows n`)};`;
    case 'delete': {
      // With clear, a deleted key is marked too: a row inserted again under it before the delete is
      // synced must not meet the old row's vectors.
      const mark = marksChanges(p)
        ? `${staleKeysInsert(name, `select ${keyText(p, 'o')} from old_rows o`)};
    `
        : '';
      return `${mark}${outboxKeysInsert(name, `select ${keys('o')} as keys, 'D'::"char" as op from old_rows o`)};`;
    }
    case 'update': {
      const sameKey = p.primaryKey
        .map((k) => `o.${quoteIdent(k.name)} = n.${quoteIdent(k.name)}`)
        .join(' and ');
      const firstKey = quoteIdent(p.primaryKey[0]?.name ?? '');
      // Compared as text because that is what gets embedded, and every type has a text form
      // (json, for one, has no equality operator); a retyped column still compares.
      const differ = (columns: readonly string[]): string =>
        `(${columns.map((c) => `n.${quoteIdent(c)}::text`).join(', ')}) is distinct from (${columns
          .map((c) => `o.${quoteIdent(c)}::text`)
          .join(', ')})`;
      const watched = watchedColumns(p);
      const changed = watched.length > 0 ? differ(watched) : 'true';
      // With clear (decision 19), the keys whose embedded content changed, and those that now hold
      // another row (a key changed), are marked in the same pass.
      const cleared = isEventsPipeline(p) ? [] : clearedColumns(p);
      const stale =
        marksChanges(p) && cleared.length > 0
          ? `, ${keys('n', `n.${firstKey} is not null and (o.${firstKey} is null or ${differ(cleared)})`)} as stale`
          : '';
      // One pass over both transition tables. A key that changed is a delete of the old key and an
      // insert of the new one.
      const pass = `select ${keys('n', `n.${firstKey} is not null and (o.${firstKey} is null or ${changed})`)} as changed,
                        ${keys('o', `n.${firstKey} is null`)} as gone${stale}
                   from new_rows n full join old_rows o on ${sameKey}`;
      if (!stale)
        return `${outboxKeysInsert(
          name,
          `select k.keys, k.op
             from (${pass}) a
            cross join lateral (values (a.changed, 'U'::"char"), (a.gone, 'D'::"char")) as k(keys, op)`,
        )};`;
      return `with a as (${pass}),
        marked as (${staleKeysInsert(name, 'select pg_catalog.unnest(a.stale) from a')})
        ${outboxKeysInsert(
          name,
          `select k.keys, k.op
             from a
            cross join lateral (values (a.changed, 'U'::"char"), (a.gone, 'D'::"char")) as k(keys, op)`,
        )};`;
    }
  }
}

/**
 * After a column it names was dropped or renamed: names no column, reads the key through to_jsonb
 * (a missing column is null), and takes every updated row as changed (fetch skips unchanged
 * content), except, for a column pipeline, a row whose only change is its destination column. A row whose key cannot be read is skipped: the pipeline's schema-change state then asks
 * for an apply and a backfill. The exception block keeps a key column retyped beyond what its old
 * type parses (a data exception) from failing the user's write; the statement's changes are skipped
 * then.
 */
function fallback(p: AnyPipeline, event: Exclude<Event, 'truncate'>): string {
  const name = quoteLiteral(p.name);
  const destination = isEventsPipeline(p) ? undefined : destinationColumn(p.config);
  // `rest`: the row without the destination column, for a column pipeline's comparison.
  const keys = (rows: string, op: string, without?: string): string =>
    `select ${name} as pipeline, ${keyTextFromJson(p, 'j.r')} as pk, '${op}' as op${
      without === undefined ? '' : `, j.r - ${quoteLiteral(without)} as rest`
    }
          from (select to_jsonb(t) as r from ${rows} t) j where ${hasKey(p, 'j.r')}`;
  // With clear, every updated or deleted key is marked: which columns changed is not known here.
  const mark =
    event !== 'insert' && marksChanges(p)
      ? `${staleKeysInsert(name, `select x.pk from (${keys(event === 'update' ? 'new_rows' : 'old_rows', 'U')}) x`)};`
      : '';
  const statement =
    event === 'insert'
      ? `${OUTBOX_INSERT} ${keys('new_rows', 'I')};`
      : event === 'delete'
        ? `${OUTBOX_INSERT} ${keys('old_rows', 'D')};`
        : destination === undefined
          ? `${OUTBOX_INSERT}
        with n as (${keys('new_rows', 'U')}), o as (${keys('old_rows', 'D')})
        select * from n
        union all
        select * from o where not exists (select 1 from n where n.pk = o.pk);`
          : // A column pipeline's own write changes only its destination column: the rows whose other
            // columns are all as they were are not queued (decision 18).
            `${OUTBOX_INSERT}
        with n as (${keys('new_rows', 'U', destination)}), o as (${keys('old_rows', 'D', destination)})
        select n.pipeline, n.pk, n.op from n
         where not exists (select 1 from o where o.pk = n.pk and o.rest = n.rest)
        union all
        select o.pipeline, o.pk, o.op from o where not exists (select 1 from n where n.pk = o.pk);`;
  return `begin
      ${mark}
      ${statement}
    exception when data_exception then
      null;
    end;`;
}

/**
 * The key and the columns the pipeline watches: what the UPDATE's fast path names; and, where the
 * row's vector is cleared, its column.
 */
const namedColumns = (p: AnyPipeline): string[] => [
  ...new Set([
    ...p.primaryKey.map((k) => k.name),
    ...watchedColumns(p),
    ...(isEventsPipeline(p) ? [] : [nulledColumn(p)]).flatMap((c) => (c === undefined ? [] : [c])),
  ]),
];

/**
 * In column mode with clear (decision 19), the vector column a content change sets to NULL in the
 * user's own row.
 */
export function nulledColumn(p: Pick<Pipeline, 'config'>): string | undefined {
  return p.config.onContentChange === 'clear' ? destinationColumn(p.config) : undefined;
}

const clearFunctionName = (pipeline: string): string =>
  qualified('embedsync', `capture_${pipeline}_clear`);
const clearTriggerName = (pipeline: string): string => quoteIdent(`embedsync_${pipeline}_clear`);

/**
 * The row-level BEFORE UPDATE function of column mode with clear: when an embedded column changed,
 * the row's vector becomes NULL in the same statement, so no query finds the row by its old meaning
 * once the transaction commits; the write of the new vector (which changes no embedded column) is
 * left alone. SECURITY INVOKER: it reads no table of embedsync's and writes only NEW. Like the
 * capture functions it names columns only once a probe has found them (decision 3), so a column
 * dropped or renamed under it makes it do nothing rather than fail the user's write.
 */
export function clearColumnFunctionSql(p: Pipeline): string | undefined {
  const column = nulledColumn(p);
  if (column === undefined) return undefined;
  const embedded = [...new Set(embedColumns(p.config).map((e) => e.column))];
  const changed = `(${embedded.map((c) => `new.${quoteIdent(c)}::text`).join(', ')}) is distinct from (${embedded
    .map((c) => `old.${quoteIdent(c)}::text`)
    .join(', ')})`;
  // While a re-embed is pending or running, the shadow column it fills (decision 20) goes live at
  // the swap, so its vector of the old text is cleared too. The function is installed with a pending
  // config before the shadow column exists and is left in place when an abandon drops it;
  // jsonb_populate_record sets a field only where the row has one, so its absence is harmless.
  const shadow = p.pendingConfig
    ? `
      new := pg_catalog.jsonb_populate_record(new, ${quoteLiteral(JSON.stringify({ [shadowColumnName(column)]: null }))}::jsonb);`
    : '';
  return `
create or replace function ${clearFunctionName(p.name)}() returns trigger
language plpgsql security invoker set search_path = pg_catalog, pg_temp as $clear$
declare
  fast boolean := pg_catalog.current_setting('embedsync.capture_probe', true) is distinct from 'on';
begin
  if not fast then
    fast := ${columnsPresent([...embedded, column])};
  end if;
  if fast then
    if ${changed} then
      new.${quoteIdent(column)} := null;${shadow}
    end if;
  end if;
  return new;
end
$clear$`;
}

/** Installs the clearing trigger where the pipeline clears a column, and drops it elsewhere. */
function clearColumnSql(p: AnyPipeline): string[] {
  const table = qualified(p.sourceSchema, p.sourceTable);
  const fn = isEventsPipeline(p) ? undefined : clearColumnFunctionSql(p);
  const drop = `drop trigger if exists ${clearTriggerName(p.name)} on ${table}`;
  if (fn === undefined) return [drop, `drop function if exists ${clearFunctionName(p.name)}()`];
  return [
    fn,
    drop,
    `create trigger ${clearTriggerName(p.name)} before update on ${table}
      for each row execute function ${clearFunctionName(p.name)}()`,
  ];
}

// The probe runs only where the function carries `embedsync.capture_probe = on`: always, unless
// event triggers turn it on in the transaction that drops or renames a column it names (sql/000012).
// A setting read in a variable's default is a simple expression; the probe is a query.
function body(p: AnyPipeline, event: Event): string {
  if (event === 'truncate') {
    const all = `${quoteLiteral(p.name)}, '${ALL_KEYS}'`;
    // With clear, every key is marked until the TRUNCATE's sync has swept the vectors.
    const mark = marksChanges(p)
      ? `insert into embedsync.stale_keys (pipeline, pk, xid) values (${all}, pg_catalog.pg_current_xact_id());
  `
      : '';
    return `${mark}${OUTBOX_INSERT} values (${all}, 'T');`;
  }
  const named = event === 'update' ? namedColumns(p) : p.primaryKey.map((k) => k.name);
  return `if not fast then
    fast := ${columnsPresent(named)};
  end if;
  if fast then
    ${fastPath(p, event)}
  else
    ${fallback(p, event)}
  end if;`;
}

// Keys become text under the same settings as everywhere else (see KEY_TEXT_SETTINGS), those the
// key's types depend on: each setting is saved and restored on every call. The UPDATE's join is
// planned without statistics (transition tables have none), so a large statement's estimate goes
// past jit_above_cost and compiling took longer than the join itself.
function settingClauses(p: AnyPipeline, event: Event): string {
  const settings = { ...keyTextSettings(p), ...(event === 'update' ? { jit: 'off' } : {}) };
  return Object.entries(settings)
    .map(([k, v]) => ` set ${k} = ${quoteLiteral(v)}`)
    .join('');
}

function functionSql(p: AnyPipeline, event: Event): string {
  return `
create or replace function ${functionName(p.name, event)}() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp${settingClauses(p, event)} as $capture$
declare
  fast boolean := pg_catalog.current_setting('embedsync.capture_probe', true) is distinct from 'on';
begin
  ${body(p, event)}
  return null;
end
$capture$`;
}

function triggerSql(p: AnyPipeline, event: Event): string {
  const table = qualified(p.sourceSchema, p.sourceTable);
  const transition =
    event === 'insert'
      ? 'referencing new table as new_rows'
      : event === 'delete'
        ? 'referencing old table as old_rows'
        : event === 'update'
          ? 'referencing old table as old_rows new table as new_rows'
          : '';
  return `create trigger ${triggerName(p.name, event)} after ${event} on ${table} ${transition}
    for each statement execute function ${functionName(p.name, event)}()`;
}

/**
 * Statements that (re)install the capture; run them inside the caller's transaction. The functions
 * probe for their columns unless the event triggers guard them and the columns are there now.
 */
export function installCaptureSql(p: AnyPipeline): string[] {
  // A pipeline that captures logically has no triggers: the WAL reader queues its changes, and the
  // publication holds its table (src/db/capture-slot.ts, decision 29).
  if (captureMode(p.config) === 'logical') return removeCaptureSql(p);
  const name = quoteLiteral(p.name);
  const columns = `array[${namedColumns(p).map(quoteLiteral).join(', ')}]::name[]`;
  return [
    `insert into embedsync.capture_columns (pipeline, columns) values (${name}, ${columns})
       on conflict (pipeline) do update set columns = excluded.columns`,
    ...EVENTS.flatMap((event) => [
      functionSql(p, event),
      `drop trigger if exists ${triggerName(p.name, event)} on ${qualified(p.sourceSchema, p.sourceTable)}`,
      triggerSql(p, event),
    ]),
    ...clearColumnSql(p),
    `select embedsync.probe_capture(${name}, not embedsync.capture_guarded(${name}))`,
  ];
}

export function removeCaptureSql(
  p: Pick<Pipeline, 'name' | 'sourceSchema' | 'sourceTable'>,
): string[] {
  return [
    `delete from embedsync.capture_columns where pipeline = ${quoteLiteral(p.name)}`,
    ...EVENTS.flatMap((event) => [
      `drop trigger if exists ${triggerName(p.name, event)} on ${qualified(p.sourceSchema, p.sourceTable)}`,
      `drop function if exists ${functionName(p.name, event)}()`,
    ]),
    `drop trigger if exists ${clearTriggerName(p.name)} on ${qualified(p.sourceSchema, p.sourceTable)}`,
    `drop function if exists ${clearFunctionName(p.name)}()`,
  ];
}
