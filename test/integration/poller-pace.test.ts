// The poller's pace: while changes flow it looks again within its busy interval, and once they
// stop it backs off to its idle interval. The waits are recorded through an injected sleep, so
// nothing here depends on how fast the machine is.
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Poller } from '../../src/poller/poller.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

describe('the poller pace', () => {
  before(async () => {
    h = await startHarness('pace', { pollers: 0 });
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, productsPipeline());
  });
  after(async () => h.stop());

  it('looks again within its busy interval after a change, and backs off to its idle interval once none come', async () => {
    const waits: number[] = [];
    const poller = new Poller(
      {
        pool: h.db.pool,
        databaseUrl: h.db.url,
        temporal: h.client,
        taskQueue: h.taskQueue,
        log: h.log,
        // Records the wait asked for; waits a moment only, so the test runs many looks quickly.
        sleep: async (ms) => {
          waits.push(ms);
          await delay(2);
        },
      },
      { busyIntervalMs: 10, busyHoldMs: 30, fallbackIntervalMs: 1000 },
    );
    h.pollers.push(poller);
    poller.start();
    await waitFor('the poller to back off while the outbox is empty', () =>
      Promise.resolve(waits.at(-1) === 1000),
    );

    const before = waits.length;
    await h.db.pool.query(`insert into products (name, description) values ('Lamp', 'Desk lamp')`);
    await waitFor('the change to be claimed, and the poller to back off again', () => {
      const since = waits.slice(before);
      return Promise.resolve(since.includes(10) && since.at(-1) === 1000);
    });

    const since = waits.slice(before);
    const busy = since.indexOf(10);
    // Before the change: idle looks. The look that claimed it and three empty ones (the 30 ms
    // hold): the busy interval. Then each empty look doubles the wait until the idle interval.
    assert.ok(
      since.slice(0, busy).every((ms) => ms === 1000),
      `idle waits before the change: ${since.slice(0, busy).join(', ')}`,
    );
    assert.deepEqual(
      since.slice(busy, busy + 11),
      [10, 10, 10, 10, 20, 40, 80, 160, 320, 640, 1000],
    );
    await waitFor('the vector row', async () => {
      const { rowCount } = await h.db.pool.query('select 1 from public.products_embeddings');
      return (rowCount ?? 0) > 0;
    });
  });
});
