// A source table's shape changing under a pipeline: the user's writes and DDL still succeed, and
// the changes still reach the outbox (and the vector table, where the pipeline can still read the
// row).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { removePipeline } from '../../src/capture/apply.js';
import { quoteIdent } from '../../src/db/ident.js';
import type { PipelineInput } from '../../src/config/pipeline.js';
import { applyPipeline, startHarness, uniqueName, type Harness } from '../helpers/harness.js';
import { waitConverged } from '../helpers/converged.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

interface Fixture {
  name: string;
  table: string;
}

/** A table and a pipeline of their own for one test, removed afterwards whatever happens. */
async function withPipeline(test: (f: Fixture) => Promise<void>): Promise<void> {
  const name = uniqueName('shape');
  const table = `${name}_src`;
  await h.db.pool.query(`create table ${quoteIdent(table)} (
    id bigint primary key, title text, body text, price numeric(10, 2), notes text, extra integer)`);
  try {
    await applyPipeline(h, pipelineConfig({ name, table }));
    await h.db.pool.query(`insert into ${quoteIdent(table)}
      values (1, 'Kettle', 'Stovetop', 40, 'n', 1), (2, 'Tent', 'Two-person', 249, 'n', 2)`);
    await converged(name);
    await test({ name, table });
  } finally {
    await removePipeline(h.db.pool, name, { dropVectorTable: true });
    await h.db.pool.query(`drop table if exists ${quoteIdent(table)}`);
  }
}

const pipelineConfig = (f: Fixture): PipelineInput => ({
  name: f.name,
  source: { table: `public.${f.table}` },
  embed: { columns: ['title', 'body'] },
  metadata: ['price'],
  embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 32 },
});

/** Whether each of the pipeline's insert, update and delete capture functions probes its columns. */
async function probing(name: string): Promise<boolean[]> {
  const { rows } = await h.db.pool.query<{ probing: boolean }>(
    `select coalesce('embedsync.capture_probe=on' = any (p.proconfig), false) as probing
       from unnest(array['insert', 'update', 'delete']) with ordinality as e(event, n)
       join pg_proc p on p.oid = ('embedsync.' || quote_ident('capture_' || $1 || '_' || e.event))::regproc
      order by e.n`,
    [name],
  );
  return rows.map((r) => r.probing);
}

async function setPaused(name: string, paused: boolean): Promise<void> {
  await h.db.pool.query('update embedsync.pipelines set sync_paused = $2 where name = $1', [
    name,
    paused,
  ]);
}

async function outbox(name: string): Promise<string[]> {
  const { rows } = await h.db.pool.query<{ change: string }>(
    `select op::text || ' ' || pk as change from embedsync.outbox_keys where pipeline = $1
      order by id, position`,
    [name],
  );
  return rows.map((r) => r.change);
}

const converged = (name: string): Promise<unknown> => waitConverged(h.db.pool, name);

async function chunks(name: string, pk: string): Promise<string[]> {
  const { rows } = await h.db.pool.query<{ chunk: string }>(
    `select chunk from public.${quoteIdent(`${name}_embeddings`)} where pk = $1 order by chunk_index`,
    [pk],
  );
  return rows.map((r) => r.chunk);
}

/**
 * With sync paused so the outbox keeps what the triggers wrote: an insert, an update of `column`
 * and a delete all succeed, and return what the outbox received.
 */
async function writeAfterChange(f: Fixture, column: string, value: string): Promise<string[]> {
  const t = quoteIdent(f.table);
  await setPaused(f.name, true);
  await h.db.pool.query(`insert into ${t} (id, title) values (3, 'Lamp')`);
  await h.db.pool.query(`update ${t} set ${quoteIdent(column)} = $1 where id = 1`, [value]);
  await h.db.pool.query(`delete from ${t} where id = 2`);
  return outbox(f.name);
}

describe('capture under schema changes', () => {
  before(async () => {
    h = await startHarness('schemacap');
  });
  after(async () => h.stop());

  it('dropping a column the pipeline does not read changes nothing for capture or sync', async () => {
    await withPipeline(async (f) => {
      await h.db.pool.query(`alter table ${quoteIdent(f.table)} drop column notes`);
      assert.deepEqual(await writeAfterChange(f, 'body', 'Electric'), ['I 3', 'U 1', 'D 2']);
      await setPaused(f.name, false);
      await converged(f.name);
      assert.deepEqual(await chunks(f.name, '1'), ['Kettle\nElectric']);
    });
  });

  it('retyping a column the pipeline does not read changes nothing for capture or sync', async () => {
    await withPipeline(async (f) => {
      await h.db.pool.query(`alter table ${quoteIdent(f.table)} alter column extra type text`);
      assert.deepEqual(await writeAfterChange(f, 'body', 'Electric'), ['I 3', 'U 1', 'D 2']);
      await setPaused(f.name, false);
      await converged(f.name);
    });
  });

  it('retyping a metadata and an embedded column keeps capture comparing them as text', async () => {
    await withPipeline(async (f) => {
      const t = quoteIdent(f.table);
      // The view names the columns the pipeline reads, which pins their types; apply makes it
      // again.
      await h.db.pool.query(`drop view ${quoteIdent(`${f.name}_embeddings_view`)}`);
      await h.db.pool.query(
        `alter table ${t} alter column price type text, alter column body type varchar(200)`,
      );
      // Same text under the new types: nothing to capture.
      await h.db.pool.query(`update ${t} set price = price, body = body`);
      assert.deepEqual(await outbox(f.name), []);
      assert.deepEqual(await writeAfterChange(f, 'price', 'forty'), ['I 3', 'U 1', 'D 2']);
      await setPaused(f.name, false);
      await converged(f.name);
      const { rows } = await h.db.pool.query<{ metadata: unknown }>(
        `select metadata from public.${quoteIdent(`${f.name}_embeddings`)} where pk = '1'`,
      );
      assert.deepEqual(rows[0]?.metadata, { price: 'forty' });
    });
  });

  it('dropping an embedded column with CASCADE leaves writes working, and every change queued', async () => {
    await withPipeline(async (f) => {
      await h.db.pool.query(`alter table ${quoteIdent(f.table)} drop column body cascade`);
      // Without the column, every updated row is taken as changed.
      assert.deepEqual(await writeAfterChange(f, 'title', 'Big kettle'), ['I 3', 'U 1', 'D 2']);
      await h.db.pool.query(`update ${quoteIdent(f.table)} set notes = 'm'`);
      assert.deepEqual((await outbox(f.name)).slice(3).sort(), ['U 1', 'U 3']);
    });
  });

  it('renaming an embedded column leaves writes working, and every change queued', async () => {
    await withPipeline(async (f) => {
      await h.db.pool.query(`alter table ${quoteIdent(f.table)} rename column body to content`);
      assert.deepEqual(await writeAfterChange(f, 'content', 'Electric'), ['I 3', 'U 1', 'D 2']);
    });
  });

  it('renaming the key column leaves writes working; the rows it cannot key are not queued', async () => {
    await withPipeline(async (f) => {
      const t = quoteIdent(f.table);
      await h.db.pool.query(`alter table ${t} rename column id to ident`);
      await setPaused(f.name, true);
      await h.db.pool.query(`insert into ${t} (ident, title) values (3, 'Lamp')`);
      await h.db.pool.query(`update ${t} set body = 'Electric' where ident = 1`);
      await h.db.pool.query(`delete from ${t} where ident = 2`);
      assert.deepEqual(await outbox(f.name), []);
      await h.db.pool.query(`truncate ${t}`);
      assert.deepEqual(await outbox(f.name), ['T *']);
    });
  });

  it('a column dropped and added again by the same name is read again on the fast path', async () => {
    await withPipeline(async (f) => {
      const t = quoteIdent(f.table);
      await setPaused(f.name, true);
      // One session throughout, so its cached plans of the capture functions see every change.
      const session = await h.db.pool.connect();
      try {
        await session.query(`update ${t} set notes = 'cached'`);
        await session.query(`alter table ${t} drop column body cascade`);
        await session.query(`update ${t} set title = 'Big kettle' where id = 1`);
        await session.query(`alter table ${t} add column body text`);
        // Back on the fast path: an update of a column the pipeline does not read queues nothing.
        await session.query(`update ${t} set notes = 'only notes'`);
        assert.deepEqual(await outbox(f.name), ['U 1']);
        await session.query(`update ${t} set body = 'Electric' where id = 1`);
        assert.deepEqual(await outbox(f.name), ['U 1', 'U 1']);
      } finally {
        session.release();
      }
      await setPaused(f.name, false);
      // Row 2 lost its body with the column, uncaptured: that is for a backfill, after an apply.
      await waitFor(
        'the new content',
        async () => (await chunks(f.name, '1'))[0] === 'Big kettle\nElectric',
      );
    });
  });

  it('the capture skips its column probe until a column it names goes, from the DDL on', async () => {
    await withPipeline(async (f) => {
      const t = quoteIdent(f.table);
      assert.deepEqual(await probing(f.name), [false, false, false]);
      // A column the pipeline does not read: no probe needed.
      await h.db.pool.query(`alter table ${t} drop column notes`);
      assert.deepEqual(await probing(f.name), [false, false, false]);
      await setPaused(f.name, true);
      const session = await h.db.pool.connect();
      try {
        // The write in the DDL's own transaction already meets a capture that probes.
        await session.query('begin');
        await session.query(`update ${t} set body = 'Electric' where id = 1`);
        await session.query(`alter table ${t} drop column body cascade`);
        await session.query(`update ${t} set title = 'Big kettle' where id = 1`);
        await session.query('commit');
      } finally {
        session.release();
      }
      assert.deepEqual(await probing(f.name), [true, true, true]);
      assert.deepEqual(await outbox(f.name), ['U 1', 'U 1']);
      // Applied again once the table has its columns, the capture skips the probe again.
      await h.db.pool.query(`alter table ${t} add column body text`);
      await applyPipeline(h, pipelineConfig(f));
      assert.deepEqual(await probing(f.name), [false, false, false]);
    });
  });

  it('a column dropped with its type (DROP DOMAIN … CASCADE) leaves writes working', async () => {
    await withPipeline(async (f) => {
      const t = quoteIdent(f.table);
      const domain = quoteIdent(`${f.name}_text`);
      await h.db.pool.query(`drop view ${quoteIdent(`${f.name}_embeddings_view`)}`);
      await h.db.pool.query(`create domain public.${domain} as text`);
      await h.db.pool.query(`alter table ${t} alter column body type public.${domain}`);
      await h.db.pool.query(`drop domain public.${domain} cascade`);
      assert.deepEqual(await probing(f.name), [true, true, true]);
      assert.deepEqual(await writeAfterChange(f, 'title', 'Big kettle'), ['I 3', 'U 1', 'D 2']);
    });
  });

  it('without the event triggers (creating them needs a superuser) the capture probes on every call', async () => {
    await withPipeline(async (f) => {
      const guards = `embedsync_capture_guard, embedsync_capture_guard_drop`;
      await h.db.pool.query(
        guards
          .split(', ')
          .map((g) => `alter event trigger ${g} disable`)
          .join('; '),
      );
      try {
        await applyPipeline(h, pipelineConfig(f));
        assert.deepEqual(await probing(f.name), [true, true, true]);
        await h.db.pool.query(`alter table ${quoteIdent(f.table)} rename column body to content`);
        assert.deepEqual(await writeAfterChange(f, 'content', 'Electric'), ['I 3', 'U 1', 'D 2']);
      } finally {
        await h.db.pool.query(
          guards
            .split(', ')
            .map((g) => `alter event trigger ${g} enable always`)
            .join('; '),
        );
      }
    });
  });

  for (const key of [
    { type: 'timestamptz', value: `'2024-01-20 12:04:05+09'`, text: '2024-01-20 03:04:05+00' },
    { type: 'boolean', value: 'true', text: 'true' },
    { type: 'mood', value: `'happy'`, text: 'happy' },
  ]) {
    it(`after a column is dropped, a ${key.type} key is queued in the same text as before`, async () => {
      const name = uniqueName('shape');
      const table = quoteIdent(`${name}_src`);
      await h.db.pool.query(`do $$ begin create type public.mood as enum ('happy', 'sad'); exception
        when duplicate_object then null; end $$`);
      await h.db.pool.query(
        `create table ${table} (k ${key.type} primary key, title text, body text)`,
      );
      try {
        await applyPipeline(h, {
          name,
          source: { table: `public.${name}_src` },
          embed: { columns: ['title', 'body'] },
          embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 32 },
        });
        await setPaused(name, true);
        await h.db.pool.query(`alter table ${table} drop column body cascade`);
        // A session whose settings differ from embedsync's: the key text must not follow them.
        const session = await h.db.pool.connect();
        try {
          await session.query(`set TimeZone = 'Asia/Tokyo'; set DateStyle = 'SQL, DMY'`);
          await session.query(`insert into ${table} (k, title) values (${key.value}, 'Lamp')`);
          await session.query(`update ${table} set title = 'Desk lamp'`);
          await session.query(`delete from ${table}`);
        } finally {
          await session.query('reset all');
          session.release();
        }
        assert.deepEqual(await outbox(name), [`I ${key.text}`, `U ${key.text}`, `D ${key.text}`]);
      } finally {
        await removePipeline(h.db.pool, name, { dropVectorTable: true });
        await h.db.pool.query(`drop table if exists ${table}`);
      }
    });
  }
});
