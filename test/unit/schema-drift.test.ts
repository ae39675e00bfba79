import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  judgeSchema,
  type CatalogSource,
  type LiveColumn,
  type LiveTable,
} from '../../src/capture/schema-drift.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';

const config = (overrides: Partial<PipelineInput> = {}) =>
  parsePipelines({
    pipelines: [
      {
        name: 't',
        source: { table: 'public.t' },
        embed: { columns: ['title', 'body'] },
        metadata: ['category'],
        embedding: { provider: 'offline', dimensions: 8 },
        ...overrides,
      },
    ],
  })[0] ?? assert.fail('no config');

const text = (name: string, attnum: number): LiveColumn => ({
  name,
  attnum,
  type: 'text',
  typname: 'text',
  category: 'S',
});
const id: LiveColumn = { name: 'id', attnum: 1, type: 'bigint', typname: 'int8', category: 'N' };

function source(overrides: Partial<CatalogSource> = {}): CatalogSource {
  return {
    name: 't',
    sourceSchema: 'public',
    sourceTable: 't',
    primaryKey: [{ name: 'id', type: 'bigint' }],
    config: config(),
    pendingConfig: null,
    baseState: 'active',
    sourceColumns: { id: 1, title: 2, body: 3, category: 4 },
    ...overrides,
  };
}

function table(columns: LiveColumn[], overrides: Partial<LiveTable> = {}): LiveTable {
  const primaryKey = [{ name: 'id', type: 'bigint' }];
  return { relid: 42, schema: 'public', table: 't', columns, primaryKey, ...overrides };
}

const intact = [id, text('title', 2), text('body', 3), text('category', 4)];

describe('judging a source table against its pipeline', () => {
  it('a table in shape needs nothing, and its columns are numbered', () => {
    const verdict = judgeSchema(source(), table(intact));
    assert.equal(verdict.hold, undefined);
    assert.equal(verdict.renamedTo, undefined);
    assert.deepEqual(verdict.columns, { id: 1, title: 2, body: 3, category: 4 });
  });

  it('a renamed or moved table is followed', () => {
    const verdict = judgeSchema(source(), table(intact, { schema: 'archive', table: 't2' }));
    assert.deepEqual(verdict.renamedTo, { schema: 'archive', table: 't2' });
    assert.equal(verdict.hold, undefined);
  });

  it('a dropped table holds the pipeline as source_missing, saying how to remove it', () => {
    const verdict = judgeSchema(source(), undefined);
    assert.equal(verdict.hold?.state, 'source_missing');
    assert.match(verdict.hold?.reason ?? '', /table public\.t is gone/);
    assert.match(verdict.hold?.reason ?? '', /npx embedsync remove --table t/);
  });

  it('a dropped embedded column needs a config change, apply and a re-embed', () => {
    const verdict = judgeSchema(source(), table([id, text('title', 2), text('category', 4)]));
    assert.equal(verdict.hold?.state, 'schema_changed');
    assert.equal(
      verdict.hold?.reason,
      `column "body" of public.t is gone: remove it from the pipeline's embed.columns (or restore it), ` +
        'then run npx embedsync apply --config <file> and npx embedsync reembed --table t',
    );
  });

  it('a dropped metadata column needs apply only', () => {
    const verdict = judgeSchema(source(), table([id, text('title', 2), text('body', 3)]));
    assert.equal(verdict.hold?.state, 'schema_changed');
    assert.match(
      verdict.hold?.reason ?? '',
      /"category" of public\.t is gone: remove it from the pipeline's metadata /,
    );
    assert.doesNotMatch(verdict.hold?.reason ?? '', /reembed/);
  });

  it('a renamed column is named by both its names, known by its number', () => {
    const verdict = judgeSchema(
      source(),
      table([id, text('title', 2), text('content', 3), text('category', 4)]),
    );
    const reason = verdict.hold?.reason ?? '';
    assert.match(reason, /column "body" of public\.t was renamed to "content": /);
    assert.match(
      reason,
      /rename it to "content" in the pipeline's embed\.columns \(or rename the column back\)/,
    );
  });

  it('an embedded column retyped to something with no text form holds; a metadata column retyped does not', () => {
    const bytes: LiveColumn = {
      name: 'body',
      attnum: 3,
      type: 'bytea',
      typname: 'bytea',
      category: 'U',
    };
    const binary = judgeSchema(source(), table([id, text('title', 2), bytes, text('category', 4)]));
    assert.match(binary.hold?.reason ?? '', /now bytea/);
    const number: LiveColumn = {
      name: 'category',
      attnum: 4,
      type: 'integer',
      typname: 'int4',
      category: 'N',
    };
    assert.equal(
      judgeSchema(source(), table([id, text('title', 2), text('body', 3), number])).hold,
      undefined,
    );
  });

  it('a key column retyped or renamed needs apply and a backfill', () => {
    const uuid: LiveColumn = {
      name: 'id',
      attnum: 1,
      type: 'uuid',
      typname: 'uuid',
      category: 'U',
    };
    const uuidKey = table([uuid, ...intact.slice(1)], {
      primaryKey: [{ name: 'id', type: 'uuid' }],
    });
    const retyped = judgeSchema(source(), uuidKey).hold?.reason ?? '';
    assert.match(
      retyped,
      /in its primary key, is now uuid \(was bigint\).*npx embedsync backfill --table t/,
    );
    const key = table([{ ...id, name: 'key' }, ...intact.slice(1)], {
      primaryKey: [{ name: 'key', type: 'bigint' }],
    });
    const renamed = judgeSchema(source(), key);
    assert.match(
      renamed.hold?.reason ?? '',
      /column "id" of public\.t was renamed to "key".*npx embedsync backfill/,
    );
  });

  it('a column only the live generation reads, gone after the new config is applied, asks for the re-embed', () => {
    const p = source({ pendingConfig: config({ embed: { columns: ['title'] } }) });
    const verdict = judgeSchema(p, table([id, text('title', 2), text('category', 4)]));
    assert.match(
      verdict.hold?.reason ?? '',
      /the live generation still reads it, the pending config does not: /,
    );
    assert.match(verdict.hold?.reason ?? '', /run npx embedsync reembed --table t$/);
  });

  it('while a re-embed runs, only what the pending config reads counts', () => {
    const p = source({
      baseState: 'reembedding',
      pendingConfig: config({ embed: { columns: ['title'] } }),
    });
    assert.equal(
      judgeSchema(p, table([id, text('title', 2), text('category', 4)])).hold,
      undefined,
    );
    assert.equal(
      judgeSchema(p, table([id, text('body', 3), text('category', 4)])).hold?.state,
      'schema_changed',
    );
  });

  it('a restored column (a new one of the same name) puts the table back in shape', () => {
    const verdict = judgeSchema(
      source(),
      table([id, text('title', 2), text('category', 4), text('body', 7)]),
    );
    assert.equal(verdict.hold, undefined);
    assert.equal(verdict.columns?.body, 7);
  });
  describe('a logically captured table (decision 29)', () => {
    const logical = () =>
      source({ config: config({ source: { table: 'public.t', capture: 'logical' } }) });

    it('in the publication with a replica identity needs nothing', () => {
      assert.equal(judgeSchema(logical(), table(intact, { published: true })).hold, undefined);
    });

    it('that lost its primary key is held once, naming the key, apply, backfill and verify', () => {
      const verdict = judgeSchema(
        logical(),
        table(intact, {
          primaryKey: [],
          published: false,
          replicaIdentityGap: 'it has no primary key',
        }),
      );
      assert.equal(verdict.hold?.state, 'schema_changed');
      const reason = verdict.hold?.reason ?? '';
      assert.doesNotMatch(reason, /is now \(\)/);
      assert.match(reason, /it has no primary key/);
      assert.match(reason, /restore its primary key/);
      assert.match(
        reason,
        /npx embedsync apply .*npx embedsync backfill --table t .*npx embedsync verify --table t --requeue/,
      );
    });

    it('out of the publication with a usable identity waits for apply', () => {
      const verdict = judgeSchema(logical(), table(intact, { published: false }));
      assert.match(verdict.hold?.reason ?? '', /is not in the publication .*npx embedsync apply/);
    });

    it('a table captured by triggers is not judged by the publication', () => {
      assert.equal(judgeSchema(source(), table(intact, { published: false })).hold, undefined);
    });
  });
});
