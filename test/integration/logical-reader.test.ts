// Logical capture's reader against the real server (decision 29): the outbox rows it queues, what a
// crash between the outbox's commit and the confirmation leaves, one reader at a time, the slot's
// life with the pipelines that use it, and apply's refusals. No Temporal: the outbox is the output.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyPipelines, removePipeline } from '../../src/capture/apply.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import { captureSlotState } from '../../src/db/capture-slot.js';
import { createLogger } from '../../src/log.js';
import { WalReader } from '../../src/poller/wal-reader.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
const log = createLogger({ logLevel: 'error', logFormat: 'json' }, 'test-logical-reader');

const pipeline = (name: string, table: string, overrides: Partial<PipelineInput> = {}) => ({
  name,
  source: { table, capture: 'logical' as const },
  embed: { columns: ['body'] },
  embedding: { provider: 'offline' as const, dimensions: 8 },
  ...overrides,
});
const apply = (...pipelines: PipelineInput[]) =>
  applyPipelines(db.pool, parsePipelines({ pipelines }), { probe: false });

/** The outbox's keys per pipeline and op, as the poller would take them, in order. */
async function queued(pipeline: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ key: string }>(
    `select o.op::text || ':' || coalesce(k.pk, o.pk) as key
       from embedsync.outbox o left join lateral unnest(o.pks) with ordinality k(pk, n) on true
      where o.pipeline = $1 order by o.id, k.n`,
    [pipeline],
  );
  return rows.map((r) => r.key);
}
const clearOutbox = () => db.pool.query('delete from embedsync.outbox');

const newReader = (options: ConstructorParameters<typeof WalReader>[1] = {}) =>
  new WalReader({ pool: db.pool, databaseUrl: db.url, log }, options);

/** Reads until the slot is confirmed past everything written before the call. */
async function drain(reader: WalReader): Promise<void> {
  const { rows } = await db.pool.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  await waitFor('the reader to confirm everything written', async () => {
    await reader.readOnce();
    const { rows: slot } = await db.pool.query<{ past: boolean }>(
      `select confirmed_flush_lsn >= $1::pg_lsn as past from pg_replication_slots
        where database = current_database()`,
      [rows[0]?.lsn],
    );
    return slot[0]?.past === true;
  });
}

describe('logical capture reader', () => {
  before(async () => {
    db = await createTestDatabase('logical_reader');
    await db.pool.query(`
      create table things (id bigint primary key, body text, other text);
      create table pairs (k1 text, k2 timestamptz, k3 double precision, body text,
                          primary key (k1, k2, k3));
      create table pairs_t (like pairs including all);
      create table ids (id uuid primary key, body text);
      create table ids_t (like ids including all)`);
  });
  after(async () => db.drop());

  it('queues the keys of inserts, updates, deletes and a truncate, one row per transaction and op', async () => {
    await apply(pipeline('things', 'public.things'));
    const reader = newReader();
    await db.pool.query(`insert into things values (1, 'a', 'x'), (2, 'b', 'y')`);
    // Without old values every update is queued, even of a column the pipeline does not read.
    await db.pool.query(`update things set other = 'z' where id = 1`);
    await db.pool.query(`update things set id = 3 where id = 2`);
    await db.pool.query(`delete from things where id = 1`);
    await db.pool.query(`begin; truncate things; insert into things values (9, 'n', null); commit`);
    await drain(reader);
    assert.deepEqual(await queued('things'), [
      'I:1',
      'I:2',
      'U:1',
      'D:2',
      'U:3',
      'D:1',
      'T:*',
      'I:9',
    ]);
    const { rows } = await db.pool.query<{ n: number }>(
      `select count(*)::int as n from embedsync.outbox where pipeline = 'things'`,
    );
    assert.equal(rows[0]?.n, 7, 'the two inserted keys share a row');
    // Confirmed: a new session is sent nothing of them again.
    await reader.close();
    const again = newReader();
    await drain(again);
    await again.close();
    assert.equal((await queued('things')).length, 8);
    // No triggers on the table.
    const triggers = await db.pool.query(
      `select 1 from pg_trigger where tgrelid = 'things'::regclass and not tgisinternal`,
    );
    assert.equal(triggers.rowCount, 0);
    await clearOutbox();
  });

  it('gives composite and non-integer keys the same key text as the triggers', async () => {
    // Two tables written alike, one per capture: the keys they queue must be the same texts.
    await apply(
      pipeline('pairs_wal', 'public.pairs'),
      pipeline('pairs_trg', 'public.pairs_t', { source: { table: 'public.pairs_t' } }),
      pipeline('ids_wal', 'public.ids'),
      pipeline('ids_trg', 'public.ids_t', { source: { table: 'public.ids_t' } }),
    );
    // A session with other settings than embedsync's writes them.
    await db.pool.query(`
      set timezone = 'America/New_York'; set datestyle = 'SQL, DMY'; set extra_float_digits = 0;
      insert into pairs values ('a''b "c"', '2024-02-29 23:30:00.123456+05:30', 0.1, 'x'),
                               ('é', '1999-12-31 23:59:59+00', -1e300, 'y');
      insert into pairs_t select * from pairs;
      insert into ids values ('6f1c1f0e-8f5d-4a55-9c43-2b8f6f0f9a11', 'u');
      insert into ids_t select * from ids;
      update pairs set body = 'z';
      update pairs_t set body = 'z';
      reset timezone; reset datestyle; reset extra_float_digits`);
    const reader = newReader();
    await drain(reader);
    await reader.close();
    const strip = (keys: string[]) => keys.map((k) => k.slice(2)).sort();
    const wal = await queued('pairs_wal');
    assert.equal(wal.length, 4);
    assert.deepEqual(strip(wal), strip(await queued('pairs_trg')));
    assert.deepEqual(await queued('ids_wal'), await queued('ids_trg'));
    assert.deepEqual(await queued('ids_wal'), ['I:6f1c1f0e-8f5d-4a55-9c43-2b8f6f0f9a11']);
    for (const name of ['pairs_wal', 'pairs_trg', 'ids_wal', 'ids_trg'])
      await removePipeline(db.pool, name);
    await clearOutbox();
  });

  it('a crash between the outbox commit and the confirmation sends the same changes again, losing none', async () => {
    const crash = newReader({ afterCommit: () => Promise.reject(new Error('killed')) });
    await db.pool.query(`insert into things values (20, 'a', null)`);
    await db.pool.query(`insert into things values (21, 'b', null)`);
    await waitFor('the crash', () =>
      crash.readOnce().then(
        () => false,
        (err: Error) => /killed/.test(err.message),
      ),
    );
    const first = await queued('things');
    assert.ok(first.includes('I:20'), first.join(' '));
    await db.pool.query(`insert into things values (22, 'c', null)`);
    const reader = newReader();
    await drain(reader);
    await reader.close();
    const keys = await queued('things');
    // What the crashed read queued is queued again, and nothing is missing.
    assert.equal(keys.filter((k) => k === 'I:20').length, 2, keys.join(' '));
    assert.deepEqual([...new Set(keys)].sort(), ['I:20', 'I:21', 'I:22']);
    await clearOutbox();
  });

  it('two readers do not both read the slot', async () => {
    const first = newReader();
    await drain(first);
    const second = newReader();
    assert.equal((await second.readOnce()).read, false);
    await db.pool.query(`insert into things values (30, 'a', null)`);
    await drain(first);
    await first.close();
    await drain(second);
    await second.close();
    assert.deepEqual(await queued('things'), ['I:30']);
    await clearOutbox();
  });

  it('the slot keeps moving while only tables it does not watch are written', async () => {
    const reader = newReader();
    await drain(reader);
    await db.pool.query(`create table elsewhere (id int, body text)`);
    await db.pool.query(
      `insert into elsewhere select g, repeat('x', 200) from generate_series(1, 5000) g`,
    );
    // Nothing of it is published: the server's keepalives say how far it has read, and the reader
    // confirms that.
    await drain(reader);
    await reader.close();
    assert.deepEqual(await queued('things'), []);
  });

  it('a key column renamed under the pipeline stops neither the reader nor the writes', async () => {
    await db.pool.query(`create table drift (id int primary key, body text)`);
    await apply(pipeline('drift', 'public.drift'));
    try {
      const reader = newReader();
      await db.pool.query(`alter table drift rename column id to ident`);
      await db.pool.query(`insert into drift values (1, 'x')`);
      await db.pool.query(`update drift set body = 'y'`);
      // Skipped, not thrown, and read past: the schema check holds the pipeline until apply and
      // backfill.
      await drain(reader);
      await reader.close();
      assert.deepEqual(await queued('drift'), []);
    } finally {
      await removePipeline(db.pool, 'drift');
    }
  });

  it('removing the last logical pipeline drops the slot, ending the session that reads it', async () => {
    const reader = newReader();
    await drain(reader);
    assert.ok(await captureSlotState(db.pool), 'the slot exists while a pipeline uses it');
    await removePipeline(db.pool, 'things');
    assert.equal(await captureSlotState(db.pool), undefined);
    const { rows } = await db.pool.query(
      `select 1 from pg_publication_rel r join pg_publication p on p.oid = r.prpubid
        where p.pubname = 'embedsync_capture'`,
    );
    assert.equal(rows.length, 0, 'and the publication holds no table');
    // And a reader with nothing to read does nothing.
    assert.equal((await reader.readOnce()).read, false);
  });

  it('apply refuses pipelines of one table that differ in how it is captured', async () => {
    await assert.rejects(
      apply(
        pipeline('ids_a', 'public.ids'),
        pipeline('ids_b', 'public.ids', { source: { table: 'public.ids' } }),
      ),
      /pipelines ids_a, ids_b sync public\.ids and differ in source\.capture/,
    );
  });

  it('apply refuses onContentChange: clear with logical capture, and creates no slot', async () => {
    await assert.rejects(
      apply(pipeline('things', 'public.things', { onContentChange: 'clear' })),
      /source\.capture: onContentChange: clear/,
    );
    assert.equal(await captureSlotState(db.pool), undefined);
  });
});
