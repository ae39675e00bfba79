// A table walk's own ways: a first backfill loads without the HNSW index and builds it however the
// walk ends (done, cancelled, failed); its window slides past a slow batch without recording a
// cursor beyond it; and a batch whose write fails after its embed is retried without paying twice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { startBackfill } from '../../src/backfill/start.js';
import { getPipeline } from '../../src/db/catalog.js';
import { pauseSignal, progressQuery, resumeSignal } from '../../workflows/definitions.js';
import type { backfill } from '../../workflows/index.js';
import {
  applyPipeline,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

async function freshTable(
  base: string,
  rows: number,
  options: { parts?: number; batchSize?: number; chunking?: object } = {},
): Promise<string> {
  const name = uniqueName(base);
  await h.db.pool.query(
    `create table ${name} (id bigint primary key, name text, description text, category text)`,
  );
  // A long description: distinct parts, so that every chunk's text is unique.
  const description = options.parts
    ? `(select string_agg('Row ' || g || ' part ' || i || ' ' || md5(g || '-' || i), ' ')
          from generate_series(1, ${options.parts}) i)`
    : `'Description of item ' || g`;
  await h.db.pool.query(
    `insert into ${name} select g, 'Item ' || g, ${description}, 'c' from generate_series(1, $1) g`,
    [rows],
  );
  await applyPipeline(
    h,
    productsPipeline({
      name,
      source: { table: name },
      metadata: ['category'],
      batchSize: options.batchSize ?? 100,
      ...(options.chunking ? { chunking: options.chunking } : {}),
    }),
  );
  return name;
}

async function begin(name: string, window = 2): Promise<WorkflowHandle<typeof backfill>> {
  const p = await getPipeline(h.db.pool, name);
  return startBackfill(h.client, p, {
    taskQueue: h.taskQueue,
    instanceId: h.instanceId,
    rows: 0,
    window,
    batchSize: p.config.batchSize,
  });
}

/** Whether the vector table has its HNSW index, and whether it is valid. */
async function hnswIndex(name: string): Promise<'valid' | 'invalid' | 'none'> {
  const { rows } = await h.db.pool.query<{ valid: boolean }>(
    `select i.indisvalid as valid from pg_index i join pg_am a on a.oid =
       (select relam from pg_class where oid = i.indexrelid)
      where i.indrelid = to_regclass($1) and a.amname = 'hnsw'`,
    [`${name}_embeddings`],
  );
  const [row] = rows;
  return row === undefined ? 'none' : row.valid ? 'valid' : 'invalid';
}

async function pausedAt(handle: WorkflowHandle<typeof backfill>): Promise<number> {
  await handle.signal(pauseSignal);
  const p = await waitFor('the pause to take hold', async () => {
    const progress = await handle.query(progressQuery);
    return progress.phase === 'paused' ? progress : false;
  });
  return p.processed;
}

async function pipelineState(name: string): Promise<string | undefined> {
  const { rows } = await h.db.pool.query<{ state: string }>(
    'select state from embedsync.pipelines where name = $1',
    [name],
  );
  return rows[0]?.state;
}

describe('table walks', () => {
  before(async () => {
    h = await startHarness('walk');
  });
  after(async () => h.stop());

  it('a first backfill loads without the HNSW index, resumes after a pause, and ends with the index built', async () => {
    const name = await freshTable('deferred', 3000);
    assert.equal(await hnswIndex(name), 'valid', 'apply creates the index');
    const handle = await begin(name, 1);
    await waitFor('a batch written', async () => (await handle.query(progressQuery)).processed > 0);
    const processed = await pausedAt(handle);
    assert.ok(processed < 3000, `paused at ${processed}`);
    assert.equal(await hnswIndex(name), 'none', 'no index is maintained while the table fills');
    // Changes keep being written meanwhile.
    await h.db.pool.query(`update ${name} set description = 'changed while paused' where id = 1`);
    await waitFor('the change synced', async () => {
      const { rows } = await h.db.pool.query(
        `select 1 from ${name}_embeddings where pk = '1' and chunk like '%changed while paused%'`,
      );
      return rows.length > 0;
    });
    await handle.signal(resumeSignal);
    assert.equal((await handle.result()).processed, 3000);
    assert.equal(await hnswIndex(name), 'valid');
    assert.equal(await pipelineState(name), 'active');

    // A second backfill finds the table full: it keeps the index all along.
    const again = await begin(name, 1);
    await waitFor('a batch walked', async () => (await again.query(progressQuery)).processed > 0);
    await pausedAt(again);
    assert.equal(await hnswIndex(name), 'valid');
    await again.signal(resumeSignal);
    await again.result();
  });

  it('a cancelled first backfill leaves its index built and the pipeline active', async () => {
    const name = await freshTable('cancelled', 3000);
    const handle = await begin(name, 1);
    await waitFor('a batch written', async () => (await handle.query(progressQuery)).processed > 0);
    await pausedAt(handle);
    assert.equal(await hnswIndex(name), 'none');
    await handle.cancel();
    await assert.rejects(handle.result());
    assert.equal(await hnswIndex(name), 'valid');
    assert.equal(await pipelineState(name), 'active');
  });

  it('a first backfill that fails for good still builds its index', async () => {
    const name = await freshTable('failing', 3000);
    const handle = await begin(name, 1);
    await waitFor('a batch written', async () => (await handle.query(progressQuery)).processed > 0);
    await pausedAt(handle);
    // A column the pipeline reads goes: the next batch fails for good.
    await h.db.pool.query(`alter table ${name} drop column description cascade`);
    await handle.signal(resumeSignal);
    await assert.rejects(handle.result());
    assert.equal(await hnswIndex(name), 'valid');
  });

  it('the window slides past a slow batch, and the cursor never passes it', async () => {
    const name = await freshTable('sliding', 1000);
    // Holds the first batch's write (its key lock) while the others go on.
    const holder = await h.db.pool.connect();
    try {
      await holder.query('begin');
      await holder.query(
        `select pg_advisory_xact_lock(hashtext('embedsync:' || $1), hashtext('1'))`,
        [name],
      );
      const handle = await begin(name, 2);
      await waitFor(
        'batches after the held one done',
        async () => (await handle.query(progressQuery)).processed >= 500,
        60_000,
      );
      const progress = await handle.query(progressQuery);
      assert.equal(progress.cursor, null, 'no cursor while the first batch is in flight');
      const { rows } = await h.db.pool.query<{ cursor: string | null }>(
        'select backfill_cursor as cursor from embedsync.pipelines where name = $1',
        [name],
      );
      assert.equal(rows[0]?.cursor ?? null, null);
      await holder.query('commit');
      assert.equal((await handle.result()).processed, 1000);
      const { rows: done } = await h.db.pool.query<{ n: number }>(
        `select count(distinct pk)::int as n from ${name}_embeddings`,
      );
      assert.equal(done[0]?.n, 1000);
    } finally {
      await holder.query('rollback').catch(() => undefined);
      holder.release();
    }
  });

  it('a batch whose write fails after its embed is retried without paying twice', async () => {
    // One row of about 600 chunks: the offline provider takes 256 inputs a request, so the row
    // spans three requests, its vectors staged as they arrive until the last one.
    const name = await freshTable('retried', 1, { parts: 600, chunking: { size: 64, overlap: 0 } });
    // Its write fails, once: after all its vectors were paid for.
    await h.db.pool.query(`create sequence ${name}_failures`);
    await h.db.pool.query(`
      create function ${name}_fail_once() returns trigger language plpgsql as $$
      begin
        if nextval('${name}_failures') = 1 then raise exception 'injected failure'; end if;
        return new;
      end $$`);
    await h.db.pool.query(
      `create trigger fail_once before insert on ${name}_embeddings
         for each row execute function ${name}_fail_once()`,
    );
    h.provider.reset();
    const handle = await begin(name, 1);
    assert.equal((await handle.result()).processed, 1);
    const { rows } = await h.db.pool.query<{ failures: number }>(
      `select last_value::int as failures from ${name}_failures`,
    );
    assert.ok((rows[0]?.failures ?? 0) >= 2, 'the write failed once and was retried');
    assert.ok(h.provider.requests >= 3, `the row spanned ${h.provider.requests} requests`);
    const sent = h.provider.seen.length;
    const twice = h.provider.seen.filter((t, i) => h.provider.seen.indexOf(t) !== i);
    assert.deepEqual(twice, [], 'a chunk was sent twice');
    const { rows: chunks } = await h.db.pool.query<{ n: number }>(
      `select count(*)::int as n from ${name}_embeddings`,
    );
    assert.equal(chunks[0]?.n, sent, 'every chunk paid for is written');
    const { rows: staged } = await h.db.pool.query<{ n: number }>(
      `select count(*)::int as n from embedsync.staged_chunks where starts_with(batch_id, $1)`,
      [`backfill:${name}:`],
    );
    assert.equal(staged[0]?.n, 0, 'nothing left staged');
  });
});
