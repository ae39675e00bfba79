// The SQL a pipeline's capture and view are made of, and the settings keys are rendered under.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { installCaptureSql } from '../../src/capture/triggers.js';
import type { EventsPipeline } from '../../src/db/catalog.js';
import { createViewSql } from '../../src/capture/vector-table.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import type { Pipeline } from '../../src/db/catalog.js';
import { KEY_TEXT_SETTINGS, keyTextOptions, withKeyTextSettings } from '../../src/db/pool.js';

function pipeline(): Pipeline {
  const [config] = parsePipelines({
    pipelines: [
      {
        name: 'products',
        source: { table: 'public.products' },
        embed: { columns: ['name', 'description'] },
        metadata: ['category', 'price', 'in_stock'],
        embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 64 },
      },
    ],
  });
  if (!config) throw new Error('no pipeline parsed');
  return {
    name: 'products',
    sourceSchema: 'public',
    sourceTable: 'products',
    primaryKey: [{ name: 'id', type: 'bigint' }],
    vectorSchema: 'public',
    vectorTable: 'products_embeddings',
    config,
    generation: 1,
    syncPaused: false,
    state: 'active',
    pendingConfig: null,
    pendingGeneration: null,
  };
}

describe('key text settings', () => {
  it('are a libpq options string, the space in DateStyle escaped', () => {
    assert.equal(KEY_TEXT_SETTINGS.DateStyle, 'ISO, YMD');
    assert.match(
      keyTextOptions(),
      /-c TimeZone=UTC -c DateStyle=ISO,\\ YMD -c IntervalStyle=postgres/,
    );
  });

  it("come after the connection string's own options, so they win", () => {
    const url = new URL(
      withKeyTextSettings('postgres://u@h:5432/db?options=-c%20TimeZone%3DAsia/Tokyo'),
    );
    assert.equal(url.searchParams.get('options'), `-c TimeZone=Asia/Tokyo ${keyTextOptions()}`);
    assert.equal(
      new URL(withKeyTextSettings('postgres://u@h/db')).searchParams.get('options'),
      keyTextOptions(),
    );
  });
});

describe("an events-only pipeline's capture", () => {
  const events: EventsPipeline = {
    eventsOnly: true,
    name: 'orders',
    sourceSchema: 'public',
    sourceTable: 'orders',
    primaryKey: [{ name: 'id', type: 'bigint' }],
    config: {
      name: 'orders',
      source: { table: 'orders' },
      sinks: [{ notify: 'c' }],
      batchSize: 200,
    },
    generation: 1,
    syncPaused: false,
    state: 'active',
  };
  const sql = installCaptureSql(events);
  const update = sql.find((s) => s.includes('_update"()')) ?? '';

  it('queues every updated row: its UPDATE compares no column, and names only the key', () => {
    assert.match(update, /n\."id" is not null and \(o\."id" is null or true\)/);
    assert.doesNotMatch(update, /\) is distinct from \(/);
    assert.ok(sql.some((s) => s.includes(`array['id']::name[]`)));
  });

  it('marks nothing stale and clears no column', () => {
    assert.ok(sql.every((s) => !s.includes('stale_keys')));
    assert.ok(sql.some((s) => s.startsWith('drop function if exists') && s.includes('_clear')));
  });
});

describe('capture functions', () => {
  const sql = installCaptureSql(pipeline()).filter((s) => s.includes('create or replace function'));

  it('carry a fixed search_path, no key text setting for a bigint key, and never notify', () => {
    assert.equal(sql.length, 4);
    for (const fn of sql) {
      assert.match(
        fn,
        /security definer set search_path = pg_catalog, pg_temp (set jit = 'off' )?as/,
      );
      assert.doesNotMatch(fn, /TimeZone|DateStyle|IntervalStyle|extra_float_digits|bytea_output/);
      assert.doesNotMatch(fn, /pg_notify/);
    }
  });

  it('carry the key text settings their key types depend on, and all of them for types unknown', () => {
    const settings = (...types: string[]): string[] => {
      const p = { ...pipeline(), primaryKey: types.map((type, i) => ({ name: `k${i}`, type })) };
      const insert = installCaptureSql(p).find((s) => s.includes('_insert"()')) ?? '';
      return [...insert.matchAll(/ set (\w+) = /g)].map((m) => m[1] ?? '');
    };
    assert.deepEqual(
      settings('integer', 'text', 'uuid', 'numeric(10,2)', 'character varying(20)'),
      ['search_path'],
    );
    assert.deepEqual(settings('timestamp(3) with time zone'), [
      'search_path',
      'TimeZone',
      'DateStyle',
    ]);
    assert.deepEqual(settings('date', 'double precision'), [
      'search_path',
      'DateStyle',
      'extra_float_digits',
    ]);
    assert.deepEqual(settings('interval'), ['search_path', 'IntervalStyle']);
    assert.deepEqual(settings('public.mood'), ['search_path', ...Object.keys(KEY_TEXT_SETTINGS)]);
  });

  it('queue a statement as one outbox row per operation, with the UPDATE planned without JIT', () => {
    const update = sql.find((s) => s.includes('_update"()')) ?? '';
    assert.match(update, /set jit = 'off'/);
    assert.match(update, /insert into embedsync\.outbox \(pipeline, pk, pks, op\)/);
    assert.match(update, /full join old_rows o on o\."id" = n\."id"/);
  });

  it('check the columns they name before the statement that names them, and fall back to to_jsonb', () => {
    const update = sql.find((s) => s.includes('_update"()')) ?? '';
    const named = `array['id', 'name', 'description', 'category', 'price', 'in_stock']::name[])) = 6;`;
    assert.ok(update.includes(named), update);
    // Only where the event triggers cannot guard them, or a column is already gone.
    assert.match(
      update,
      /fast boolean := pg_catalog\.current_setting\('embedsync\.capture_probe', true\) is distinct from 'on';\s+begin\s+if not fast then/,
    );
    assert.match(update, /else\s+begin[\s\S]*to_jsonb\(t\)[\s\S]*exception when data_exception/);
    const truncate = sql.find((s) => s.includes('_truncate"()')) ?? '';
    assert.doesNotMatch(truncate, /pg_attribute/);
  });
});

describe('the vector view', () => {
  it('selects the key and the columns the pipeline reads, those that exist', () => {
    const [drop, create] = createViewSql(pipeline(), [
      'id',
      'name',
      'category',
      'price',
      'in_stock',
      'notes',
      'chunk',
    ]);
    assert.match(drop ?? '', /^drop view if exists "public"."products_embeddings_view"$/);
    const columns = 's."id", s."name", s."category", s."price", s."in_stock"\n';
    assert.ok(
      create?.includes(`select v.chunk_index, v.chunk, v.embedding, v.embedded_at, ${columns}`),
      create,
    );
  });

  it('is only dropped while its key column is missing', () => {
    const view = '"public"."products_embeddings_view"';
    assert.deepEqual(createViewSql(pipeline(), ['ident', 'name']), [`drop view if exists ${view}`]);
  });
});
