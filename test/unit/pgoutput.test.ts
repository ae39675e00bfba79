import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { logicalCaptureRefusal } from '../../src/capture/capture-mode.js';
import { decodeMessage, formatLsn, type PgOutputMessage } from '../../src/capture/pgoutput.js';
import { decodeChanges } from '../../src/capture/wal-changes.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import { REPO_ROOT } from '../../src/stack/paths.js';

// Captured from PostgreSQL 15 (pg_logical_slot_peek_binary_changes, proto_version 1) for:
//   t (id bigint primary key, a text, b int), c (k1 text, k2 timestamptz, v text, primary key (k1, k2))
//   insert into t values (1,'x',1),(2,null,2); update t set a='y' where id=1;
//   update t set id=3 where id=2; delete from t where id=1;
//   insert into c values ('a''b', '2024-01-01 10:00+02', 'v'); truncate t;
//   alter table c replica identity full; update c set v = 'w';
const lines = readFileSync(path.join(REPO_ROOT, 'test/fixtures/pgoutput/changes.txt'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => l.split(' '));
const messages: PgOutputMessage[] = lines.map(([, , hex]) =>
  decodeMessage(Buffer.from(hex ?? '', 'hex')),
);
const T = 4969444; // 0x004bd3e4
const C = 4969451;

describe('pgoutput messages', () => {
  it('decodes begin, relation, insert and commit with their LSNs', () => {
    assert.deepEqual(messages[0], { tag: 'begin', finalLsn: 0x18517802e8n, xid: 21421587 });
    assert.deepEqual(messages[1], {
      tag: 'relation',
      relid: T,
      schema: 'public',
      table: 't',
      columns: [
        { name: 'id', key: true, typeOid: 20 },
        { name: 'a', key: false, typeOid: 25 },
        { name: 'b', key: false, typeOid: 23 },
      ],
    });
    assert.deepEqual(messages[2], { tag: 'insert', relid: T, row: ['1', 'x', '1'] });
    assert.deepEqual(messages[3], { tag: 'insert', relid: T, row: ['2', null, '2'] });
    assert.deepEqual(messages[4], {
      tag: 'commit',
      commitLsn: 0x18517802e8n,
      endLsn: 0x1851780318n,
    });
    // The row's lsn column for a commit is its end: where the slot is advanced to.
    assert.equal(formatLsn(0x1851780318n), lines[4]?.[0]);
  });

  it('decodes an update of the key with the old key, a delete by key and a truncate', () => {
    assert.deepEqual(messages[9], {
      tag: 'update',
      relid: T,
      old: { kind: 'key', row: ['2', null, null] },
      row: ['3', null, '2'],
    });
    assert.deepEqual(messages[12], {
      tag: 'delete',
      relid: T,
      old: { kind: 'key', row: ['1', null, null] },
    });
    assert.deepEqual(messages[20], { tag: 'truncate', relids: [T] });
  });

  it('decodes a composite key and a whole old row under REPLICA IDENTITY FULL', () => {
    assert.deepEqual(messages[16], {
      tag: 'insert',
      relid: C,
      row: ["a'b", '2024-01-01 08:00:00+00', 'v'],
    });
    const update = messages[24];
    assert.equal(update?.tag, 'update');
    assert.deepEqual(update.tag === 'update' && update.old, {
      kind: 'row',
      row: ["a'b", '2024-01-01 08:00:00+00', 'v'],
    });
  });

  it('decodes a logical message', () => {
    const marker = decodeMessage(
      Buffer.from('4d000000001a779e6b78656d62656473796e635f636170747572650000000000', 'hex'),
    );
    assert.deepEqual(marker, {
      tag: 'message',
      transactional: false,
      lsn: 0x1a779e6b78n,
      prefix: 'embedsync_capture',
    });
  });

  it('refuses a message cut short', () => {
    assert.throws(() => decodeMessage(Buffer.from('49004bd3e44e0003740000', 'hex')), /pgoutput/);
  });
});

describe('decoded changes for the outbox', () => {
  const pipelines = [
    { name: 'things', relid: T, keyColumns: ['id'] },
    { name: 'pairs', relid: C, keyColumns: ['k1', 'k2'] },
  ];

  it('queues a run per operation, a changed key as a delete and an update, and a truncate in place', () => {
    const decoded = decodeChanges(messages, pipelines);
    assert.equal(decoded.transactions, 7);
    assert.equal(decoded.endLsn, 0x1851781538n);
    assert.deepEqual(decoded.runs, [
      { pipeline: 'things', op: 'I', keys: [['1'], ['2']] },
      { pipeline: 'things', op: 'U', keys: [['1']] },
      { pipeline: 'things', op: 'D', keys: [['2']] },
      { pipeline: 'things', op: 'U', keys: [['3']] },
      { pipeline: 'things', op: 'D', keys: [['1']] },
      { pipeline: 'pairs', op: 'I', keys: [["a'b", '2024-01-01 08:00:00+00']] },
      { pipeline: 'things', op: 'T', keys: [] },
      // With old values whose key is the same: an update only.
      { pipeline: 'pairs', op: 'U', keys: [["a'b", '2024-01-01 08:00:00+00']] },
    ]);
  });

  it('joins consecutive transactions’ runs of one operation into one run, keeping each pipeline’s order of operations', () => {
    const relation = messages.find((m) => m.tag === 'relation' && m.relid === T);
    let lsn = 0x100n;
    const tx = (...changes: PgOutputMessage[]): PgOutputMessage[] => {
      lsn += 0x10n;
      return [
        { tag: 'begin', finalLsn: lsn, xid: Number(lsn) },
        ...changes,
        { tag: 'commit', commitLsn: lsn, endLsn: lsn + 1n },
      ];
    };
    const insert = (id: string): PgOutputMessage => ({
      tag: 'insert',
      relid: T,
      row: [id, 'x', '1'],
    });
    const update = (id: string): PgOutputMessage => ({
      tag: 'update',
      relid: T,
      row: [id, 'y', '1'],
    });
    const decoded = decodeChanges(
      [
        relation ?? assert.fail('no relation message in the fixture'),
        ...tx(insert('1')),
        ...tx(insert('2')),
        ...tx(insert('3'), update('1')),
        ...tx(update('2')),
        ...tx(insert('4')),
        ...tx({ tag: 'truncate', relids: [T] }),
        ...tx(insert('5')),
        ...tx(insert('6')),
      ],
      pipelines,
    );
    assert.equal(decoded.transactions, 8);
    assert.equal(decoded.endLsn, lsn + 1n);
    assert.deepEqual(decoded.runs, [
      { pipeline: 'things', op: 'I', keys: [['1'], ['2'], ['3']] },
      { pipeline: 'things', op: 'U', keys: [['1'], ['2']] },
      { pipeline: 'things', op: 'I', keys: [['4']] },
      { pipeline: 'things', op: 'T', keys: [] },
      { pipeline: 'things', op: 'I', keys: [['5'], ['6']] },
    ]);
  });

  it('joins a bulk statement’s run of 300,000 keys to the run before it', () => {
    const relation = messages.find((m) => m.tag === 'relation' && m.relid === T);
    const update = (id: number): PgOutputMessage => ({
      tag: 'update',
      relid: T,
      row: [String(id), 'y', '1'],
    });
    const bulk: PgOutputMessage[] = [{ tag: 'begin', finalLsn: 0x20n, xid: 2 }];
    for (let id = 2; id <= 300_001; id += 1) bulk.push(update(id));
    bulk.push({ tag: 'commit', commitLsn: 0x20n, endLsn: 0x21n });
    const decoded = decodeChanges(
      [
        relation ?? assert.fail('no relation message in the fixture'),
        { tag: 'begin', finalLsn: 0x10n, xid: 1 },
        update(1),
        { tag: 'commit', commitLsn: 0x10n, endLsn: 0x11n },
        ...bulk,
      ],
      pipelines,
    );
    assert.equal(decoded.runs.length, 1);
    const [run] = decoded.runs;
    assert.equal(run?.op, 'U');
    assert.equal(run?.keys.length, 300_001);
    assert.deepEqual(run?.keys.at(-1), ['300001']);
  });

  it('passes over tables no pipeline captures, and keeps nothing of an unfinished transaction', () => {
    const decoded = decodeChanges(messages.slice(0, 4), [pipelines[1] ?? assert.fail()]);
    assert.deepEqual(decoded, { runs: [], transactions: 0, unreadable: [] });
    assert.deepEqual(decodeChanges(messages.slice(0, 5), [pipelines[1] ?? assert.fail()]).runs, []);
  });

  it('counts a change whose key column is gone as unreadable, not as a key', () => {
    const decoded = decodeChanges(messages.slice(0, 5), [
      { name: 'things', relid: T, keyColumns: ['renamed'] },
    ]);
    assert.deepEqual(decoded.runs, []);
    assert.deepEqual(decoded.unreadable, [{ pipeline: 'things', count: 2 }]);
  });
});

describe('whether a pipeline may capture logically', () => {
  const config = (overrides: Partial<PipelineInput> = {}) =>
    parsePipelines({
      pipelines: [
        {
          name: 't',
          source: { table: 'public.t', capture: 'logical' },
          embed: { columns: ['a'] },
          embedding: { provider: 'offline', dimensions: 8 },
          ...overrides,
        },
      ],
    })[0] ?? assert.fail('no config');

  it('needs wal_level = logical, and says how to set it', () => {
    assert.match(
      logicalCaptureRefusal(config(), 'replica')?.message ?? '',
      /set wal_level = logical and restart PostgreSQL.*rds\.logical_replication = 1/,
    );
    assert.equal(logicalCaptureRefusal(config(), 'logical'), undefined);
  });

  it('refuses onContentChange: clear, which must mark keys in the writing transaction', () => {
    assert.match(
      logicalCaptureRefusal(config({ onContentChange: 'clear' }), 'logical')?.message ?? '',
      /onContentChange: clear.*only a trigger/,
    );
  });

  it('leaves trigger capture alone whatever the wal_level', () => {
    assert.equal(
      logicalCaptureRefusal(config({ source: { table: 'public.t' } }), 'replica'),
      undefined,
    );
  });
});
