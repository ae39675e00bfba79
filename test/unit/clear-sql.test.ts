// The SQL onContentChange: clear adds (docs/architecture.md, decision 19): the marks the capture
// writes in vector-table mode, the filter of the view, and the NULLing trigger of column mode.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clearColumnFunctionSql,
  installCaptureSql,
  removeCaptureSql,
} from '../../src/capture/triggers.js';
import { createViewSql } from '../../src/capture/vector-table.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import type { Pipeline } from '../../src/db/catalog.js';

function pipeline(overrides: Partial<PipelineInput> = {}): Pipeline {
  const [config] = parsePipelines({
    pipelines: [
      {
        name: 'products',
        source: { table: 'public.products' },
        embed: { columns: ['name', 'description'] },
        embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 64 },
        ...overrides,
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

const fn = (sql: string[], event: string): string =>
  sql.find((s) => s.includes(`function "embedsync"."capture_products_${event}"()`)) ?? '';

describe('onContentChange: clear, vector-table mode', () => {
  it('the UPDATE capture marks the keys whose embedded columns changed, in the same pass', () => {
    const update = fn(installCaptureSql(pipeline({ onContentChange: 'clear' })), 'update');
    assert.match(update, /insert into embedsync\.stale_keys \(pipeline, pk, xid\)/);
    assert.match(update, /pg_catalog\.pg_current_xact_id\(\)/);
    // Compared on the embedded columns only: a metadata column's change marks nothing.
    assert.match(
      update,
      /filter \(where n\."id" is not null and \(o\."id" is null or \(n\."name"::text, n\."description"::text\) is distinct from/,
    );
    assert.doesNotMatch(update, /on conflict/);
  });

  it('DELETE and TRUNCATE mark too; INSERT does not', () => {
    const sql = installCaptureSql(pipeline({ onContentChange: 'clear' }));
    assert.match(fn(sql, 'delete'), /insert into embedsync\.stale_keys/);
    assert.match(
      fn(sql, 'truncate'),
      /insert into embedsync\.stale_keys .* values \('products', '\*'/,
    );
    assert.doesNotMatch(fn(sql, 'insert'), /stale_keys/);
  });

  it('keep, the default, marks nothing and the view filters nothing', () => {
    const p = pipeline();
    assert.ok(installCaptureSql(p).every((s) => !s.includes('stale_keys')));
    assert.ok(
      createViewSql(p, ['id', 'name', 'description']).every((s) => !s.includes('stale_keys')),
    );
  });

  it("the view leaves out a marked key, and every key while a TRUNCATE's mark stands", () => {
    const view = createViewSql(pipeline({ onContentChange: 'clear' }), [
      'id',
      'name',
      'description',
    ]);
    assert.match(
      view.join('\n'),
      /where not exists \(select 1 from embedsync\.stale_keys m\s+where m\.pipeline = 'products' and m\.pk in \(v\.pk, '\*'\)\)/,
    );
  });
});

describe('onContentChange: clear, column mode', () => {
  const column = (onContentChange: 'keep' | 'clear') =>
    pipeline({
      metadata: [],
      destination: { column: 'embedding', truncate: false, index: false },
      onContentChange,
    });

  it('a BEFORE UPDATE row trigger sets the vector column to NULL when an embedded column changed', () => {
    const p = column('clear');
    const sql = installCaptureSql(p);
    const body = clearColumnFunctionSql(p) ?? '';
    assert.ok(sql.includes(body));
    assert.match(body, /security invoker set search_path = pg_catalog, pg_temp/);
    assert.match(
      body,
      /if \(new\."name"::text, new\."description"::text\) is distinct from \(old\."name"::text, old\."description"::text\) then\s+new\."embedding" := null;/,
    );
    // A column it names is looked for first whenever the probe is on.
    assert.match(
      body,
      /attname = any \(array\['name', 'description', 'embedding'\]::name\[\]\)\) = 3/,
    );
    assert.ok(
      sql.some((s) =>
        /create trigger "embedsync_products_clear" before update on "public"\."products"\s+for each row/.test(
          s,
        ),
      ),
    );
    // It marks no keys: the vector is in the row.
    assert.ok(sql.every((s) => !s.includes('stale_keys')));
  });

  it('keep drops the trigger (a switch back from clear), and so does remove', () => {
    const sql = installCaptureSql(column('keep'));
    assert.equal(clearColumnFunctionSql(column('keep')), undefined);
    assert.ok(sql.includes('drop function if exists "embedsync"."capture_products_clear"()'));
    assert.ok(!sql.some((s) => s.includes('create trigger "embedsync_products_clear"')));
    assert.ok(
      removeCaptureSql(column('clear')).includes(
        'drop function if exists "embedsync"."capture_products_clear"()',
      ),
    );
  });
});
