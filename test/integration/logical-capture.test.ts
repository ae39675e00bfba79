// Logical capture end to end (decision 29): WAL → reader → outbox → poller → Temporal → pgvector,
// and switching a pipeline between trigger and logical capture while rows are written.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import { captureSlotState } from '../../src/db/capture-slot.js';
import {
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitConverged } from '../helpers/converged.js';

let h: Harness;

const apply = (capture: 'trigger' | 'logical') =>
  applyPipelines(
    h.db.pool,
    parsePipelines({
      pipelines: [productsPipeline({ source: { table: 'public.products', capture } })],
    }),
  );

const converged = (): Promise<unknown> => waitConverged(h.db.pool, 'products');

const vectorCount = async (): Promise<number> => {
  const { rows } = await h.db.pool.query<{ n: number }>(
    'select count(distinct pk)::int as n from public.products_embeddings',
  );
  return rows[0]?.n ?? -1;
};

describe('logical capture', () => {
  before(async () => {
    h = await startHarness('logical_capture');
    await h.db.pool.query(PRODUCTS_TABLE);
    await apply('logical');
  });
  after(async () => h.stop());

  it('inserts, updates, deletes and a truncate reach the vector table', async () => {
    await h.db.pool.query(
      `insert into products (name, description, category, price)
       select 'Item ' || i, 'Description ' || i, 'c', i from generate_series(1, 30) i`,
    );
    await converged();
    assert.equal(await vectorCount(), 30);
    await h.db.pool.query(`update products set description = 'Changed' where id <= 10`);
    await h.db.pool.query(`delete from products where id > 25`);
    await converged();
    assert.equal(await vectorCount(), 25);
    const { rows } = await h.db.pool.query<{ chunk: string }>(
      `select chunk from public.products_embeddings where pk = '3'`,
    );
    assert.deepEqual(
      rows.map((r) => r.chunk),
      ['Product: Item 3\nChanged'],
    );
    await h.db.pool.query(`truncate products`);
    await converged();
    assert.equal(await vectorCount(), 0);
    const slot = await captureSlotState(h.db.pool);
    assert.ok(slot, 'the slot exists');
    assert.ok(slot.walStatus === 'reserved' || slot.walStatus === 'extended', slot.walStatus ?? '');
    const gauge = await h.pollers[0]?.metrics.registry.getSingleMetricAsString(
      'embedsync_capture_slot_lag_bytes',
    );
    assert.match(gauge ?? '', new RegExp(`slot="${slot.slot}"`));
  });

  it('switching between trigger and logical capture while rows are written loses no change', async () => {
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await h.db.pool.query(
          `with n as (insert into products (name, description) values ('W' || $1, 'new') returning id)
           update products set description = 'edited ' || $1
            where id = (select max(id) - 1 from products) and id not in (select id from n)`,
          [written],
        );
        written += 1;
      }
    })();
    for (const capture of ['trigger', 'logical', 'trigger', 'logical'] as const) {
      await new Promise((r) => setTimeout(r, 150));
      await apply(capture);
    }
    writing = false;
    await writer;
    assert.ok(written > 10, `only ${written} writes`);
    await converged();
    const { rows } = await h.db.pool.query<{ n: number }>(
      'select count(*)::int as n from products',
    );
    assert.equal(await vectorCount(), rows[0]?.n);
  });

  it('going back to triggers drops the slot once its reader has queued what it held', async () => {
    await h.db.pool.query(`insert into products (name, description) values ('Last', 'one')`);
    await apply('trigger');
    assert.equal(await captureSlotState(h.db.pool), undefined);
    await converged();
    const { rows } = await h.db.pool.query<{ n: number }>(
      'select count(*)::int as n from products',
    );
    assert.equal(await vectorCount(), rows[0]?.n);
  });
});
