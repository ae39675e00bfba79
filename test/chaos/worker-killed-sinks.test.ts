// The worker is SIGKILLed while a webhook delivery is in flight (the receiver holds its answer),
// with user writes going on. Every sync that ran must still reach both sinks under its delivery
// ids — a repeat of an id only as a retry carrying the same keys — and each sink's last word on
// every row must be the row's state once writes stop.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import pg from 'pg';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import type { ChangeEvent } from '../../src/sinks/payload.js';
import { createTestDatabase } from '../helpers/db.js';
import { PRODUCTS_TABLE, productsPipeline } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';
import {
  assertSyncWorkflowsCompleted,
  RECOVERY_MS,
  waitForConvergence,
} from './helpers/converge.js';
import { startPoller, startWorker, uniqueTaskQueue, type Deployment } from './helpers/embedsync.js';
import { startWriteLoad } from './helpers/load.js';
import { inScene } from './helpers/scene.js';
import { sharedTemporalAddress, temporalClient } from './helpers/setup.js';

const SECRET = 'whsec-chaos-sinks-81d2';
// The worker is a child process: it inherits this.
process.env.EMBEDSYNC_CHAOS_SINK_SECRET = SECRET;
const CHANNEL = 'chaos_product_changes';

describe('a worker killed with SIGKILL during a delivery', () => {
  it('every sync still reaches every sink, and each sink ends on every row as it is', () =>
    inScene(async (scene) => {
      const db = await createTestDatabase('chaos_sinks');
      scene.onCleanup(() => db.drop());

      const hooked: ChangeEvent[] = [];
      let hold: (() => void) | undefined;
      let holding = false;
      const held = new Promise<void>((resolve) => (hold = resolve));
      let heldOne: () => void = () => undefined;
      const oneHeld = new Promise<void>((resolve) => (heldOne = resolve));
      const server = http.createServer((req, res) => {
        const parts: Buffer[] = [];
        req.on('data', (c: Buffer) => parts.push(c));
        req.on('end', () => {
          const body = Buffer.concat(parts).toString('utf8');
          const expected = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
          if (req.headers['x-embedsync-signature'] !== expected) {
            res.writeHead(401).end();
            return;
          }
          const event = JSON.parse(body) as ChangeEvent;
          // The fourth delivery is held unanswered: the worker is killed while it waits.
          if (hooked.length === 3 && !holding) {
            holding = true;
            heldOne();
            void held.then(() => res.writeHead(503).end());
            return;
          }
          hooked.push(event);
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      scene.onCleanup(async () => {
        hold?.();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      });
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;

      const listener = new pg.Client({ connectionString: db.url });
      await listener.connect();
      scene.onCleanup(() => listener.end());
      const notified: ChangeEvent[] = [];
      listener.on('notification', (n) => {
        if (n.payload) notified.push(JSON.parse(n.payload) as ChangeEvent);
      });
      await listener.query(`listen ${CHANNEL}`);

      await db.pool.query(PRODUCTS_TABLE);
      await applyPipelines(
        db.pool,
        parsePipelines({
          pipelines: [
            productsPipeline({
              sinks: [
                { notify: CHANNEL },
                { webhook: { url, secretEnv: 'EMBEDSYNC_CHAOS_SINK_SECRET' } },
              ],
            }),
          ],
        }),
      );
      const deployment: Deployment = {
        databaseUrl: db.url,
        temporalAddress: sharedTemporalAddress(),
        taskQueue: uniqueTaskQueue('sinks'),
      };
      const client = await temporalClient(scene, deployment.temporalAddress);
      const worker = await startWorker(scene, deployment);
      const poller = await startPoller(scene, deployment);
      const load = startWriteLoad(db.url, 'sinks-chaos');
      scene.onCleanup(async () => void (await load.stop()));

      await waitFor('a delivery in flight at the webhook', () => oneHeld.then(() => true), 60_000);
      const exit = await worker.kill('SIGKILL');
      assert.equal(exit.signal, 'SIGKILL', 'the worker was not killed but exited by itself');
      hold?.();
      await load.progressed(20);
      const successor = await startWorker(scene, deployment, 'worker-2');
      await load.progressed(20);
      const written = await load.stop();
      await waitForConvergence(db.pool, RECOVERY_MS);
      await assertSyncWorkflowsCompleted(client, deployment.taskQueue, RECOVERY_MS);
      assert.ok(successor.running && poller.running);
      assert.equal(written.failed, 0);

      // Every sync that ran delivered to both sinks: nothing missing.
      const syncs: string[] = [];
      for await (const w of client.workflow.list({
        query: `TaskQueue = "${deployment.taskQueue}"`,
      }))
        syncs.push(w.workflowId);
      const ids = (events: ChangeEvent[]): Set<string> =>
        new Set(events.map((e) => e.deliveryId.replace(/\/\d+(\/\d+)?$/, '')));
      await waitFor('every sync at both sinks', () => {
        const n = ids(notified);
        const h = ids(hooked);
        return Promise.resolve(syncs.every((s) => n.has(s) && h.has(s)));
      });
      // A repeated id is a retry: the same keys.
      for (const events of [notified, hooked]) {
        const first = new Map<string, string[]>();
        for (const e of events) {
          const keys = e.changes.map((c) => c.key);
          const before = first.get(e.deliveryId);
          if (before) assert.deepEqual(keys, before, `${e.deliveryId} repeated with other keys`);
          else first.set(e.deliveryId, keys);
        }
      }
      // Each sink's last word on every row is the row's state now.
      const { rows } = await db.pool.query<{ id: string }>('select id::text from products');
      const present = new Set(rows.map((r) => r.id));
      for (const [name, events] of [
        ['notify', notified],
        ['webhook', hooked],
      ] as const) {
        const last = new Map<string, string>();
        for (const e of events) for (const c of e.changes) last.set(c.key, c.operation);
        for (const id of present) assert.equal(last.get(id), 'upsert', `${name}: row ${id}`);
        for (const [key, op] of last)
          if (!present.has(key)) assert.equal(op, 'delete', `${name}: deleted row ${key}`);
      }
    }));
});
