// One key text per row, whatever the writing session's TimeZone, DateStyle, IntervalStyle and float
// digits; and migration 000008, which rewrites keys stored in other forms to that one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { removePipeline } from '../../src/capture/apply.js';
import { quoteIdent } from '../../src/db/ident.js';
import { migrate } from '../../src/db/migrator.js';
import { applyPipeline, startHarness, uniqueName, type Harness } from '../helpers/harness.js';
import { waitConverged } from '../helpers/converged.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

const INSERTING = { TimeZone: 'UTC' };
const UPDATING = {
  TimeZone: 'Asia/Tokyo',
  DateStyle: 'SQL, DMY',
  IntervalStyle: 'sql_standard',
  extra_float_digits: '0',
};
const DELETING = {
  TimeZone: 'America/New_York',
  DateStyle: 'German',
  IntervalStyle: 'iso_8601',
  extra_float_digits: '-3',
};

/** A connection like an application's: the server's defaults, then these settings. */
async function inSession<T>(
  settings: Record<string, string>,
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: h.db.url });
  await client.connect();
  try {
    for (const [name, value] of Object.entries(settings)) {
      await client.query('select set_config($1, $2, false)', [name, value]);
    }
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A table keyed by `key` (column definitions) with one embedded column, and its pipeline. */
async function withPipeline(
  key: string,
  primaryKey: string,
  test: (name: string, table: string) => Promise<void>,
): Promise<void> {
  const name = uniqueName('keys');
  const table = `${name}_src`;
  await h.db.pool.query(
    `create table ${quoteIdent(table)} (${key}, body text, primary key (${primaryKey}))`,
  );
  try {
    await applyPipeline(h, {
      name,
      source: { table: `public.${table}` },
      embed: { columns: ['body'] },
      embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 32 },
    });
    await test(name, table);
  } finally {
    await removePipeline(h.db.pool, name, { dropVectorTable: true });
    await h.db.pool.query(`drop table if exists ${quoteIdent(table)}`);
  }
}

async function vectorKeys(name: string): Promise<{ pk: string; chunk: string }[]> {
  const { rows } = await h.db.pool.query<{ pk: string; chunk: string }>(
    `select pk, chunk from public.${quoteIdent(`${name}_embeddings`)} order by pk, chunk_index`,
  );
  return rows;
}

const converged = (name: string): Promise<unknown> => waitConverged(h.db.pool, name);

const CASES = [
  {
    type: 'timestamptz',
    value: `'2024-01-20 03:04:05.123456+00'`,
    canonical: '2024-01-20 03:04:05.123456+00',
  },
  { type: 'date', value: `'2024-01-20'`, canonical: '2024-01-20' },
  { type: 'double precision', value: '1 / 3::float8', canonical: '0.3333333333333333' },
  { type: 'interval', value: `'-1 day 2 hours 3.5 seconds'`, canonical: '-1 days +02:00:03.5' },
];

describe('one key text per row', () => {
  before(async () => {
    h = await startHarness('keys');
  });
  after(async () => h.stop());

  for (const c of CASES) {
    it(`a ${c.type} key written, updated and deleted under different session settings has one key set`, async () => {
      await withPipeline(`k ${c.type}`, 'k', async (name, table) => {
        const t = quoteIdent(table);
        await inSession(INSERTING, (s) => s.query(`insert into ${t} values (${c.value}, 'first')`));
        await converged(name);
        assert.deepEqual(await vectorKeys(name), [{ pk: c.canonical, chunk: 'first' }]);
        await inSession(UPDATING, (s) => s.query(`update ${t} set body = 'second'`));
        await waitFor('the new content', async () =>
          (await vectorKeys(name)).some((v) => v.chunk === 'second'),
        );
        await converged(name);
        assert.deepEqual(await vectorKeys(name), [{ pk: c.canonical, chunk: 'second' }]);
        await inSession(DELETING, (s) => s.query(`delete from ${t}`));
        await waitFor('the vectors to go', async () => (await vectorKeys(name)).length === 0);
      });
    });
  }

  it('a composite key of a timestamptz and a float has one key set under any session settings', async () => {
    await withPipeline('at timestamptz, score float8', 'at, score', async (name, table) => {
      const t = quoteIdent(table);
      const canonical = '["2024-01-20T03:04:05.5+00:00", 0.3333333333333333]';
      const row = `('2024-01-20 03:04:05.5+00', 1 / 3::float8, 'first')`;
      await inSession(INSERTING, (s) => s.query(`insert into ${t} values ${row}`));
      await converged(name);
      await inSession(UPDATING, (s) => s.query(`update ${t} set body = 'second'`));
      await waitFor('the new content', async () =>
        (await vectorKeys(name)).some((v) => v.chunk === 'second'),
      );
      await converged(name);
      assert.deepEqual(await vectorKeys(name), [{ pk: canonical, chunk: 'second' }]);
      await inSession(DELETING, (s) => s.query(`delete from ${t}`));
      await waitFor('the vectors to go', async () => (await vectorKeys(name)).length === 0);
    });
  });

  it('migration 000008 rewrites keys stored in other forms, keeping one set of vectors per key', async () => {
    await withPipeline('k timestamptz', 'k', async (name, table) => {
      const vt = `public.${quoteIdent(`${name}_embeddings`)}`;
      const [a, b, c] = [
        '2024-01-20 03:04:05+00',
        '2024-01-21 03:04:05+00',
        '2024-01-22 03:04:05+00',
      ];
      const t = quoteIdent(table);
      await h.db.pool.query(`insert into ${t} values ($1, 'alpha'), ($2, 'beta'), ($3, 'gamma')`, [
        a,
        b,
        c,
      ]);
      await converged(name);
      await h.db.pool.query('update embedsync.pipelines set sync_paused = true where name = $1', [
        name,
      ]);
      // The state an older version left: keys rendered under the writing session's settings.
      const copy = (from: string, to: string, chunk: string, age: string): string =>
        `insert into ${vt} (pk, chunk_index, embedding, chunk, metadata, content_hash, generation, embedded_at)
         select ${to}, chunk_index, embedding, ${chunk}, metadata, content_hash, generation,
                embedded_at - interval '${age}'
           from ${vt} where pk = '${from}'`;
      await inSession({ TimeZone: 'Asia/Tokyo', DateStyle: 'SQL, DMY' }, async (s) => {
        // a: only in the form of a session whose day comes first (20/01/2024 12:04:05 JST)
        await s.query(`update ${vt} set pk = pk::timestamptz::text where pk = $1`, [a]);
        // b: a canonical set and a stale set in another form
        await s.query(copy(b, `'${b}'::timestamptz::text`, `'stale'`, '1 hour'));
        // c: two old forms and no canonical one: the newer (Tokyo, ISO) is kept
        await s.query('set DateStyle = ISO');
        await s.query(copy(c, `'${c}'::timestamptz::text`, 'chunk', '0 hours'));
        await s.query(`set TimeZone = 'America/New_York'`);
        await s.query(copy(c, `'${c}'::timestamptz::text`, `'older'`, '1 day'));
        await s.query(`delete from ${vt} where pk = $1`, [c]);
        const queue = `insert into embedsync.outbox (pipeline, pk, op) values ($1, $2::timestamptz::text, 'U')`;
        await s.query(queue, [name, a]);
      });
      const before = await vectorKeys(name);
      assert.equal(new Set(before.map((v) => v.pk)).size, 5);
      assert.ok(before.some((v) => v.pk === '20/01/2024 12:04:05 JST'));
      await h.db.pool.query(
        `insert into embedsync.dead_letters (pipeline, pk, generation, content_hash, error)
        values ($1, '20/01/2024 12:04:05 JST', 1, 'h', 'refused')`,
        [name],
      );
      // As if a re-embed were running: its table has the same old keys.
      const swap = `public.${quoteIdent(`${name}_embeddings_swap`)}`;
      await h.db.pool.query(`create table ${swap} as select * from ${vt}`);
      try {
        await h.db.pool.query('delete from embedsync.migrations where id = 8');
        assert.deepEqual(await migrate(h.db.pool), ['canonical_keys']);
        const { rows: swapped } = await h.db.pool.query<{ pk: string }>(
          `select distinct pk from ${swap} order by pk`,
        );
        assert.deepEqual(swapped, [{ pk: a }, { pk: b }, { pk: c }]);
      } finally {
        await h.db.pool.query(`drop table ${swap}`);
      }
      assert.deepEqual(await vectorKeys(name), [
        { pk: a, chunk: 'alpha' },
        { pk: b, chunk: 'beta' },
        { pk: c, chunk: 'gamma' },
      ]);
      const queued = await h.db.pool.query<{ pk: string }>(
        'select pk from embedsync.outbox_keys where pipeline = $1',
        [name],
      );
      assert.deepEqual(queued.rows, [{ pk: a }]);
      const letters = await h.db.pool.query<{ pk: string }>(
        'select pk from embedsync.dead_letters where pipeline = $1',
        [name],
      );
      assert.deepEqual(letters.rows, [{ pk: a }]);
      await h.db.pool.query('delete from embedsync.dead_letters where pipeline = $1', [name]);
      await h.db.pool.query('update embedsync.pipelines set sync_paused = false where name = $1', [
        name,
      ]);
      await converged(name);
    });
  });
});
