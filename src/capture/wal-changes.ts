// What decoded transactions mean for the outbox (docs/architecture.md, decision 29): per pipeline,
// the keys of each run of one operation across the transactions read together, as the texts of
// their key columns. The key text itself is made in SQL from those (`enqueueKeyRuns`,
// src/db/outbox.ts), exactly as the trigger path makes it. Pure.
import type { OutboxOp } from '../db/outbox.js';
import type { PgOutputMessage, RelationColumn, TupleValue } from './pgoutput.js';

/** A pipeline that captures by logical decoding, as the reader sees it. */
export interface LogicalPipeline {
  name: string;
  /** Its source table's oid. */
  relid: number;
  /** Its primary key's column names, in key order. */
  keyColumns: readonly string[];
}

/**
 * One outbox row to be: a pipeline's keys of one operation in consecutive transactions; each key
 * is its columns' texts, in key order. A TRUNCATE has no keys (it queues '*').
 */
export interface KeyRun {
  pipeline: string;
  op: OutboxOp;
  keys: string[][];
}

export interface DecodedChanges {
  runs: KeyRun[];
  /** The end of the last whole transaction read: where the slot may be confirmed up to after. */
  endLsn?: bigint;
  /** Transactions read whole. */
  transactions: number;
  /** Changes of a pipeline's table whose key could not be read (a key column renamed or gone). */
  unreadable: { pipeline: string; count: number }[];
}

type Change = { op: OutboxOp; key?: string[] };

/** The key columns' texts of a row, or undefined where one cannot be read. */
function keyOf(
  columns: readonly RelationColumn[],
  keyColumns: readonly string[],
  row: readonly TupleValue[],
): string[] | undefined {
  const key: string[] = [];
  for (const name of keyColumns) {
    const at = columns.findIndex((c) => c.name === name);
    const value = at < 0 ? undefined : row[at];
    if (typeof value !== 'string') return undefined;
    key.push(value);
  }
  return key;
}

const sameKey = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The outbox rows of the whole transactions among `messages`, in order; consecutive transactions'
 * runs of a pipeline's same operation are one run (the order of a pipeline's operations is kept,
 * transaction boundaries are not: the outbox needs keys, not transactions). An UPDATE without old
 * values is queued whatever it changed (which columns changed is not known); one that changed its
 * key is a delete of the old key and an update of the new one, as the trigger path queues it.
 * Changes of tables no pipeline captures logically are passed over.
 */
export function decodeChanges(
  messages: Iterable<PgOutputMessage>,
  pipelines: readonly LogicalPipeline[],
  /** The relation messages seen so far: a stream sends each once per session. */
  relations = new Map<number, readonly RelationColumn[]>(),
): DecodedChanges {
  const byRelid = new Map<number, LogicalPipeline[]>();
  for (const p of pipelines) byRelid.set(p.relid, [...(byRelid.get(p.relid) ?? []), p]);
  const runs: KeyRun[] = [];
  const unreadable = new Map<string, number>();
  let transactions = 0;
  let endLsn: bigint | undefined;
  // The open transaction's runs, per pipeline: op → keys, in the order first seen.
  let open = new Map<string, Map<OutboxOp, string[][]>>();
  const flush = (pipeline: string): void => {
    for (const [op, keys] of open.get(pipeline) ?? []) runs.push({ pipeline, op, keys });
    open.delete(pipeline);
  };
  const add = (relid: number, changes: (p: LogicalPipeline) => Change[]): void => {
    for (const p of byRelid.get(relid) ?? []) {
      for (const change of changes(p)) {
        if (change.op === 'T') {
          // Kept in place: keys queued after a TRUNCATE must not be swept by it.
          flush(p.name);
          runs.push({ pipeline: p.name, op: 'T', keys: [] });
          continue;
        }
        if (!change.key) {
          unreadable.set(p.name, (unreadable.get(p.name) ?? 0) + 1);
          continue;
        }
        const ops = open.get(p.name) ?? new Map<OutboxOp, string[][]>();
        open.set(p.name, ops);
        const keys = ops.get(change.op);
        if (keys) keys.push(change.key);
        else ops.set(change.op, [change.key]);
      }
    }
  };
  const committed: KeyRun[] = [];
  // Each pipeline's last committed run: a transaction's run of the same operation joins it, so
  // single-row transactions read together queue one outbox row between them, not one each.
  const last = new Map<string, KeyRun>();
  const commit = (run: KeyRun): void => {
    const before = last.get(run.pipeline);
    // One key at a time: a bulk statement's run can hold more keys than a call takes arguments.
    if (run.op !== 'T' && before?.op === run.op) for (const key of run.keys) before.keys.push(key);
    else {
      committed.push(run);
      last.set(run.pipeline, run);
    }
  };
  for (const m of messages) {
    switch (m.tag) {
      case 'begin':
        open = new Map();
        runs.length = 0;
        break;
      case 'relation':
        relations.set(m.relid, m.columns);
        break;
      case 'insert':
      case 'update':
      case 'delete': {
        const columns = relations.get(m.relid) ?? [];
        add(m.relid, (p) => {
          const key = (row: readonly TupleValue[]) => keyOf(columns, p.keyColumns, row);
          if (m.tag === 'insert') return [{ op: 'I', key: key(m.row) }];
          if (m.tag === 'delete') return [{ op: 'D', key: key(m.old.row) }];
          const now = key(m.row);
          const was = m.old && key(m.old.row);
          return was && now && !sameKey(was, now)
            ? [
                { op: 'D', key: was },
                { op: 'U', key: now },
              ]
            : [{ op: 'U', key: now }];
        });
        break;
      }
      case 'truncate':
        for (const relid of m.relids) add(relid, () => [{ op: 'T' }]);
        break;
      case 'commit':
        for (const pipeline of [...open.keys()]) flush(pipeline);
        runs.forEach(commit);
        runs.length = 0;
        open = new Map();
        transactions += 1;
        endLsn = m.endLsn;
        break;
      case 'message':
      case 'other':
        break;
    }
  }
  return {
    runs: committed,
    ...(endLsn === undefined ? {} : { endLsn }),
    transactions,
    unreadable: [...unreadable].map(([pipeline, count]) => ({ pipeline, count })),
  };
}
