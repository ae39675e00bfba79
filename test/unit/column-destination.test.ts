// The pure pieces of a column pipeline (docs/architecture.md, decision 18): one text per row, cut
// or refused at the model's limit; its destination column judged against the live table; the
// capture's fallback comparing every column but the destination.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUSY_ATTEMPTS, RowsBusyError, writeAroundBusyRows } from '../../activities/busy-rows.js';
import { judgeSchema, type LiveColumn } from '../../src/capture/schema-drift.js';
import { installCaptureSql } from '../../src/capture/triggers.js';
import { createVectorTableSql, createViewSql } from '../../src/capture/vector-table.js';
import { columnText, tooLongMessage } from '../../src/chunking/column.js';
import { chunkDocument } from '../../src/chunking/document.js';
import { countTokens } from '../../src/chunking/tokens.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import type { Pipeline } from '../../src/db/catalog.js';
import { writeTarget } from '../../src/db/destination.js';

const config = (overrides: Partial<PipelineInput> = {}) =>
  parsePipelines({
    pipelines: [
      {
        name: 't',
        source: { table: 'public.t' },
        embed: { columns: ['title', 'body'] },
        embedding: { provider: 'offline', dimensions: 8 },
        destination: { column: 'embedding' },
        chunking: { size: 64, overlap: 4 },
        ...overrides,
      },
    ],
  })[0] ?? assert.fail('no config');

const openai = { provider: 'openai' as const, model: 'text-embedding-3-small', dimensions: 8 };

const pipeline = (overrides: Partial<PipelineInput> = {}): Pipeline => ({
  name: 't',
  sourceSchema: 'public',
  sourceTable: 't',
  primaryKey: [{ name: 'id', type: 'bigint' }],
  vectorSchema: 'public',
  vectorTable: 't_embeddings',
  config: config(overrides),
  generation: 1,
  syncPaused: false,
  state: 'active',
  pendingConfig: null,
  pendingGeneration: null,
});

describe('a column pipeline', () => {
  it('sends each row as one text, whatever its chunking says', () => {
    const long = 'A sentence of the body. '.repeat(40);
    assert.deepEqual(chunkDocument(config(), long, ''), [long]);
    assert.deepEqual(chunkDocument(config(), '   ', ''), []);
  });

  it('refuses a text longer than the model takes, naming the row, its length and the limit', () => {
    const text = 'word '.repeat(9000);
    const one = columnText(config({ embedding: openai }), text);
    assert.ok('tooLong' in one);
    assert.deepEqual(one.tooLong, { size: countTokens(text), limit: 8191, unit: 'tokens' });
    assert.equal(
      tooLongMessage('42', one.tooLong),
      `row 42: its text is ${countTokens(text)} tokens, longer than the model's limit of 8191 tokens per input; shorten it, or set destination.truncate: true to embed its first 8191 tokens`,
    );
  });

  it('with truncate, cuts the text to the most the model takes, and says so', () => {
    const text = 'word '.repeat(9000);
    const one = columnText(
      config({ embedding: openai, destination: { column: 'embedding', truncate: true } }),
      text,
    );
    assert.ok('text' in one && one.truncated);
    assert.ok(text.startsWith(one.text));
    assert.ok(countTokens(one.text) <= 8191);
    // One code point more would not fit.
    assert.ok(countTokens(text.slice(0, one.text.length + 1)) > 8191);
    const short = columnText(config({ embedding: openai }), 'a short text');
    assert.deepEqual(short, { text: 'a short text', truncated: false });
  });

  it('keeps a record table without vectors, and no view', () => {
    const p = pipeline();
    const [table, ...rest] = createVectorTableSql(p);
    assert.equal(rest.length, 0, 'no HNSW index on the record');
    assert.doesNotMatch(table ?? '', /\bembedding\s/);
    assert.match(table ?? '', /truncated\s+boolean/);
    assert.deepEqual(createViewSql(p, ['id', 'title', 'body']), [
      'drop view if exists "public"."t_embeddings_view"',
    ]);
    assert.deepEqual(writeTarget(p), {
      recordSchema: 'public',
      recordTable: 't_embeddings',
      column: 'embedding',
    });
    assert.equal(writeTarget({ ...p, config: { ...p.config, destination: undefined } }), undefined);
  });

  it('capture compares only the columns it reads, and the fallback every column but the destination', () => {
    const sql = installCaptureSql(pipeline()).join('\n');
    const update = sql.slice(sql.indexOf('capture_t_update'), sql.indexOf('capture_t_delete'));
    const fast = update.slice(0, update.indexOf('else'));
    assert.match(fast, /\(n\."title"::text, n\."body"::text\) is distinct from/);
    assert.doesNotMatch(fast, /embedding/);
    assert.match(update, /j\.r - 'embedding' as rest/);
    assert.match(update, /o\.rest = n\.rest/);
  });
});

describe("judging a column pipeline's destination", () => {
  const col = (name: string, attnum: number, type: string): LiveColumn => ({
    name,
    attnum,
    type,
    typname: type.replace(/\(.*/, ''),
    category: type === 'text' ? 'S' : 'U',
  });
  const intact = [
    col('id', 1, 'bigint'),
    col('title', 2, 'text'),
    col('body', 3, 'text'),
    col('embedding', 4, 'vector(8)'),
  ];
  const source = {
    name: 't',
    sourceSchema: 'public',
    sourceTable: 't',
    primaryKey: [{ name: 'id', type: 'bigint' }],
    config: config(),
    pendingConfig: null,
    baseState: 'active' as const,
    sourceColumns: { id: 1, title: 2, body: 3, embedding: 4 },
  };
  const table = (columns: LiveColumn[]) => ({
    relid: 42,
    schema: 'public',
    table: 't',
    columns,
    primaryKey: [{ name: 'id', type: 'bigint' }],
  });

  it('a table in shape needs nothing, and the column is numbered', () => {
    const verdict = judgeSchema(source, table(intact));
    assert.equal(verdict.hold, undefined);
    assert.deepEqual(verdict.columns, { id: 1, title: 2, body: 3, embedding: 4 });
  });

  it('a dropped destination holds the pipeline, naming the column and the fix', () => {
    const verdict = judgeSchema(source, table(intact.slice(0, 3)));
    assert.equal(verdict.hold?.state, 'schema_changed');
    assert.equal(
      verdict.hold?.reason,
      `column "embedding" of public.t, the pipeline's destination, is gone: run npx embedsync apply --config <file> (it adds the column again), then npx embedsync backfill --table t`,
    );
  });

  it('a retyped or renamed destination holds it too', () => {
    const retyped = judgeSchema(
      source,
      table([...intact.slice(0, 3), col('embedding', 4, 'vector(3)')]),
    );
    assert.match(retyped.hold?.reason ?? '', /is now vector\(3\), not vector\(8\)/);
    const renamed = judgeSchema(source, table([...intact.slice(0, 3), col('vec', 4, 'vector(8)')]));
    assert.match(renamed.hold?.reason ?? '', /was renamed to "vec": rename it back/);
  });
});

describe('a write around busy rows', () => {
  it('tries again after a growing pause until no row is busy', async () => {
    const pauses: number[] = [];
    const busy = [3, 2, 1, 0];
    let tries = 0;
    await writeAroundBusyRows(
      'p',
      () => Promise.resolve(busy[tries++] ?? 0),
      (ms) => {
        pauses.push(ms);
        return Promise.resolve();
      },
    );
    assert.equal(tries, 4);
    assert.deepEqual(pauses, [50, 100, 200]);
  });

  it('gives up after its tries with a retryable error naming the pipeline and the rows', async () => {
    const pauses: number[] = [];
    let tries = 0;
    await assert.rejects(
      writeAroundBusyRows(
        'docs',
        () => {
          tries += 1;
          return Promise.resolve(2);
        },
        (ms) => {
          pauses.push(ms);
          return Promise.resolve();
        },
      ),
      (err: unknown) =>
        err instanceof RowsBusyError &&
        err.rows === 2 &&
        /2 row\(s\) of pipeline docs stayed locked/.test(err.message),
    );
    assert.equal(tries, BUSY_ATTEMPTS);
    assert.deepEqual(pauses, [50, 100, 200, 400, 800]);
  });
});
