// A logically captured table that loses its replica identity (decision 29): the application's
// updates and deletes still succeed, because the table leaves the publication in the DDL's
// transaction; its pipeline is held naming the fix, and once the key is back, apply and a backfill
// bring the vectors in step again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBackfill } from '../../src/backfill/start.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import { getPipeline } from '../../src/db/catalog.js';
import { requeueReport } from '../../src/verify/requeue.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import {
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitConverged } from '../helpers/converged.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
// Its own name: a backfill's workflow id is the pipeline's, in a namespace other databases share.
const NAME = uniqueName('products');

const apply = () =>
  applyPipelines(
    h.db.pool,
    parsePipelines({
      pipelines: [
        productsPipeline({ name: NAME, source: { table: 'public.products', capture: 'logical' } }),
      ],
    }),
  );

const published = async (): Promise<boolean> => {
  const { rowCount } = await h.db.pool.query(
    `select 1 from pg_publication_tables where pubname = 'embedsync_capture' and tablename = 'products'`,
  );
  return (rowCount ?? 0) > 0;
};

const converged = (): Promise<unknown> => waitConverged(h.db.pool, NAME);

/** Waits for the pollers' schema check to hold the pipeline; returns its reason. */
const held = () =>
  waitFor('the pipeline to be held', async () => {
    const { rows } = await h.db.pool.query<{ state: string; state_reason: string | null }>(
      `select state, state_reason from embedsync.pipelines where name = $1`,
      [NAME],
    );
    return rows[0]?.state === 'schema_changed' ? (rows[0].state_reason ?? '') : false;
  });

/** What the application does meanwhile: every kind of write, none captured. */
async function writeMeanwhile(tag: string): Promise<void> {
  const u = await h.db.pool.query(`update products set description = $1 where id <= 5`, [tag]);
  assert.equal(u.rowCount, 5);
  const d = await h.db.pool.query(
    `delete from products where id in (select max(id) from products)`,
  );
  assert.equal(d.rowCount, 1);
  await h.db.pool.query(`insert into products (name, description) values ($1, 'new')`, [tag]);
}

/** Apply puts the table back and lifts the hold; the backfill and verify --requeue catch up. */
async function repair(): Promise<void> {
  const [result] = await apply();
  assert.equal(result?.heldBecause, undefined);
  assert.ok(await published(), 'apply put the table back in the publication');
  const p = await getPipeline(h.db.pool, NAME);
  assert.notEqual(p.state, 'schema_changed');
  const handle = await startBackfill(h.client, p, {
    taskQueue: h.taskQueue,
    instanceId: h.instanceId,
    rows: 0,
  });
  await handle.result();
  // The backfill embeds the rows written meanwhile; the vectors of the row deleted meanwhile are
  // verify's to find.
  const report = await verifyPipeline(h.db.pool, NAME);
  assert.equal(report.missing.length + report.stale.length, 0);
  assert.equal(report.orphaned.length, 1);
  await requeueReport(h.db.pool, report);
  await converged();
}

describe('logical capture of a table that loses its replica identity', () => {
  before(async () => {
    h = await startHarness('logical_replica_identity');
    await h.db.pool.query(PRODUCTS_TABLE);
    await apply();
    await h.db.pool.query(
      `insert into products (name, description) select 'Item ' || i, 'D' || i from generate_series(1, 20) i`,
    );
    await converged();
  });
  after(async () => h.stop());

  it('a dropped primary key: writes go on, the pipeline is held with the fix, apply and backfill converge', async () => {
    await h.db.pool.query(`alter table products drop constraint products_pkey`);
    assert.equal(await published(), false, 'the table left the publication with its key');
    await writeMeanwhile('no key');
    const reason = await held();
    assert.match(reason, /no primary key/);
    assert.match(reason, /restore its primary key/);
    assert.match(reason, /npx embedsync apply/);
    assert.match(reason, new RegExp(`npx embedsync backfill --table ${NAME}`));
    assert.match(reason, new RegExp(`npx embedsync verify --table ${NAME} --requeue`));
    await h.db.pool.query(`alter table products add primary key (id)`);
    await repair();
  });

  it('REPLICA IDENTITY NOTHING: the same', async () => {
    await h.db.pool.query(`alter table products replica identity nothing`);
    assert.equal(await published(), false);
    await writeMeanwhile('nothing');
    const reason = await held();
    assert.match(reason, /replica identity is NOTHING/);
    // Apply refuses to put it back: the table would break the application's writes again.
    await assert.rejects(apply(), /cannot be captured logically: its replica identity is NOTHING/);
    assert.equal(await published(), false);
    assert.match(await held(), /replica identity is NOTHING/);
    await h.db.pool.query(`alter table products replica identity default`);
    await repair();
  });

  it('the index of REPLICA IDENTITY USING INDEX dropped: the same', async () => {
    await h.db.pool.query(`create unique index products_name_id on products (id, name)`);
    await h.db.pool.query(`alter table products alter column name set not null`);
    await h.db.pool.query(`alter table products replica identity using index products_name_id`);
    assert.ok(await published());
    await h.db.pool.query(`drop index products_name_id`);
    assert.equal(await published(), false);
    await writeMeanwhile('index gone');
    assert.match(await held(), /index of its replica identity is gone/);
    await h.db.pool.query(`alter table products replica identity default`);
    await repair();
  });
});
