// Sinks: every change of a churn of inserts, updates and deletes reaches a LISTENing client, a
// webhook receiver that checks the signature (and fails its first attempts) and a user's workflow,
// once per delivery id, in commit order per row; a webhook that refuses a delivery leaves a dead
// letter that status shows.
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import pg from 'pg';
import type { ChangeEvent } from '../../src/sinks/payload.js';
import { verifySignature } from '../../src/sinks/payload.js';
import { redeliver } from '../../src/sinks/redeliver.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelineFile } from '../../src/config/pipeline.js';
import { gatherStatus } from '../../src/status/index.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'whsec-sinks-test-5f1c';
process.env.EMBEDSYNC_TEST_SINK_SECRET = SECRET;

interface Received {
  deliveryId: string;
  body: string;
  event: ChangeEvent;
}

/** A webhook receiver: checks the HMAC itself (node:crypto), answers 503 to its first `fail`. */
class Receiver {
  readonly accepted: Received[] = [];
  readonly rejected: string[] = [];
  attempts = 0;
  private server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      this.attempts += 1;
      const body = Buffer.concat(parts).toString('utf8');
      const expected = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
      const given = String(req.headers['x-embedsync-signature'] ?? '');
      const valid =
        given.length === expected.length &&
        timingSafeEqual(Buffer.from(given), Buffer.from(expected));
      if (!valid) {
        this.rejected.push(body);
        res.writeHead(401).end('bad signature');
        return;
      }
      if (this.attempts <= this.fail) {
        res.writeHead(503).end('warming up');
        return;
      }
      if (this.status !== 200) {
        res.writeHead(this.status).end('no such subscriber');
        return;
      }
      const event = JSON.parse(body) as ChangeEvent;
      assert.equal(req.headers['idempotency-key'], event.deliveryId);
      this.accepted.push({ deliveryId: event.deliveryId, body, event });
      res.writeHead(204).end();
    });
  });

  constructor(
    private readonly fail: number,
    public status = 200,
  ) {}

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/products`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let h: Harness;
let listener: pg.Client;
const notified: ChangeEvent[] = [];
const hook = new Receiver(3);
const refusing = new Receiver(0, 400);
const started: ChangeEvent[] = [];
let userWorker: Worker | undefined;
let userWorkerRun: Promise<void> | undefined;
const userQueue = `sink-user-${process.pid}-${Date.now().toString(36)}`;
const channel = 'product_changes';

/** Deliveries by id (duplicates of an id are retries and carry the same changes). */
function byId(events: ChangeEvent[]): Map<string, ChangeEvent> {
  const seen = new Map<string, ChangeEvent>();
  for (const e of events) seen.set(e.deliveryId, e);
  return seen;
}

/** The batch a delivery id names: the delivery id less its sink (and notify part). */
const batchOf = (id: string): string => id.replace(/\/\d+(\/\d+)?$/, '');

/** Per key, the states a sink saw, in the order it received them. */
function statesPerKey(events: ChangeEvent[], column?: string): Map<string, string[]> {
  const states = new Map<string, string[]>();
  for (const e of events)
    for (const c of e.changes) {
      const state =
        c.operation === 'delete' ? 'deleted' : column ? String(c.columns?.[column]) : 'present';
      states.set(c.key, [...(states.get(c.key) ?? []), state]);
    }
  return states;
}

describe('sinks', () => {
  before(async () => {
    h = await startHarness('sinks');
    await h.db.pool.query(PRODUCTS_TABLE);
    listener = new pg.Client({ connectionString: h.db.url });
    await listener.connect();
    listener.on('notification', (n) => {
      if (n.channel === channel && n.payload) notified.push(JSON.parse(n.payload) as ChangeEvent);
    });
    await listener.query(`listen ${channel}`);
    userWorker = await Worker.create({
      connection: h.workerConnection(),
      namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
      taskQueue: userQueue,
      workflowsPath: path.join(
        path.dirname(fileURLToPath(import.meta.url)),
        '../fixtures/sink-workflows/index.ts',
      ),
      activities: {
        record: (event: ChangeEvent) => {
          started.push(event);
          return Promise.resolve();
        },
      },
    });
    userWorkerRun = userWorker.run();
    const url = await hook.listen();
    const refusedUrl = await refusing.listen();
    await applyPipeline(
      h,
      productsPipeline({
        sinks: [
          { notify: channel },
          { webhook: { url, secretEnv: 'EMBEDSYNC_TEST_SINK_SECRET', columns: ['name'] } },
          { workflow: { type: 'recordChanges', taskQueue: userQueue } },
        ],
      }),
      productsPipeline({
        name: 'products_refused',
        sinks: [{ webhook: { url: refusedUrl, secretEnv: 'EMBEDSYNC_TEST_SINK_SECRET' } }],
      }),
    );
  });
  after(async () => {
    // The user's worker shares the harness's connection: it goes first.
    userWorker?.shutdown();
    await userWorkerRun;
    // Before the database is dropped, which ends its connections.
    await listener.end();
    await h.stop();
    await hook.close();
    await refusing.close();
  });

  it('delivers every change of a churn to each sink, once per delivery id, in commit order per row', async () => {
    // Three rounds, each committed in several statements: every row goes v1 → v2 → (some) deleted.
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into products (name, description, category, price)
       select 'v1', 'Item ' || i, 'churn', i from generate_series(1, 30) i returning id::text`,
    );
    const ids = rows.map((r) => r.id);
    for (let i = 0; i < ids.length; i += 6) {
      await h.db.pool.query(`update products set name = 'v2' where id = any($1::bigint[])`, [
        ids.slice(i, i + 6),
      ]);
    }
    const deleted = ids.filter((_, i) => i % 3 === 0);
    await h.db.pool.query('delete from products where id = any($1::bigint[])', [deleted]);
    const final = new Map(ids.map((id) => [id, deleted.includes(id) ? 'deleted' : 'v2']));

    // Each sink has delivered every row's final state: nothing is missing.
    const reached = (events: ChangeEvent[], column?: string): boolean => {
      const states = statesPerKey([...byId(events).values()], column);
      return ids.every((id) => {
        const seen = states.get(id) ?? [];
        const last = seen[seen.length - 1];
        return column ? last === final.get(id) : (last === 'deleted') === deleted.includes(id);
      });
    };
    await waitFor(
      'the notify listener to see every final state',
      () => Promise.resolve(reached(notified)),
      60_000,
    );
    await waitFor(
      'the webhook to get every final state',
      () =>
        Promise.resolve(
          reached(
            hook.accepted.map((r) => r.event),
            'name',
          ),
        ),
      60_000,
    );
    await waitFor(
      'the user workflow to get every final state',
      () => Promise.resolve(reached(started)),
      60_000,
    );

    // The receiver failed its first three attempts; Temporal retried them.
    assert.ok(hook.attempts > hook.accepted.length, 'the first attempts were answered 503');
    assert.deepEqual(hook.rejected, [], 'every delivery was signed with the secret');

    // Every sync has finished its deliveries: a batch whose states a later one superseded may still
    // be on its way to a sink when that sink has seen every final state.
    const batches = (events: ChangeEvent[]): string[] =>
      [...new Set(events.map((e) => batchOf(e.deliveryId)))].sort();
    await waitFor(
      'every sync to finish its deliveries',
      async () => {
        const running = h.client.workflow.list({
          query: `TaskQueue = "${h.taskQueue}" AND ExecutionStatus = "Running"`,
        });
        for await (const _ of running) return false;
        return (
          batches(hook.accepted.map((r) => r.event)).join() === batches(notified).join() &&
          batches(started).join() === batches(notified).join()
        );
      },
      60_000,
    );

    // Once per delivery id: a repeated id is a retry carrying the same changes.
    for (const events of [notified, hook.accepted.map((r) => r.event), started]) {
      const first = byId(events);
      for (const e of events) {
        assert.deepEqual(
          e.changes.map((c) => c.key),
          first.get(e.deliveryId)?.changes.map((c) => c.key),
        );
      }
    }
    assert.equal(notified.length, byId(notified).size, 'notify sends each delivery once');
    // The same batches reached every sink.
    assert.deepEqual(batches(hook.accepted.map((r) => r.event)), batches(notified));
    assert.deepEqual(batches(started), batches(notified));

    // In commit order per row: the states a sink saw never go back (v1, v2, deleted).
    const rank = { present: 0, v1: 0, v2: 1, deleted: 2 } as Record<string, number>;
    for (const [events, column] of [
      [notified, undefined],
      [hook.accepted.map((r) => r.event), 'name'],
      [started, undefined],
    ] as const) {
      for (const [key, seen] of statesPerKey(events, column)) {
        const ranks = seen.map((s) => rank[s] ?? -1);
        assert.deepEqual(ranks, [...ranks].sort(), `key ${key} went back: ${seen.join(' → ')}`);
      }
    }

    // Keys only, unless columns are named; never the secret.
    const all = [...notified, ...started].flatMap((e) => e.changes);
    assert.ok(all.every((c) => c.columns === undefined));
    for (const r of hook.accepted) assert.ok(!r.body.includes(SECRET));
    assert.ok(notified.every((e) => e.pipeline === 'products' && e.generation === 1));
  });

  it('the signature covers the body: a changed body or another secret fails the check', async () => {
    const sample = hook.accepted[0];
    assert.ok(sample);
    const signature = createHmac('sha256', SECRET).update(sample.body).digest('hex');
    assert.ok(verifySignature(sample.body, SECRET, `sha256=${signature}`));
    assert.ok(
      // Any changed byte: the delivery id is in every body (an operation might not be).
      !verifySignature(
        sample.body.replace('"deliveryId":"', '"deliveryId":"x'),
        SECRET,
        `sha256=${signature}`,
      ),
    );
    assert.ok(!verifySignature(sample.body, 'another-secret', `sha256=${signature}`));
    // The receiver's own check turns away a body signed with another secret.
    const forged = JSON.stringify({ ...sample.event, deliveryId: 'forged/0' });
    const response = await fetch(await hookUrl(), {
      method: 'POST',
      headers: {
        'x-embedsync-signature': `sha256=${createHmac('sha256', 'guess').update(forged).digest('hex')}`,
      },
      body: forged,
    });
    assert.equal(response.status, 401);
    assert.deepEqual(hook.rejected, [forged]);
    assert.ok(!hook.accepted.some((r) => r.deliveryId === 'forged/0'));
  });

  it('a webhook that refuses a delivery (4xx) leaves a dead letter that status shows', async () => {
    const status = await waitFor(
      'the refused delivery in status',
      async () => {
        const report = await gatherStatus(
          h.db.pool,
          { address: '', namespace: '', base: '', client: undefined, error: 'not asked' },
          'products_refused',
        );
        const s = report.pipelines[0];
        return s && s.failedDeliveries.count > 0 ? s : false;
      },
      60_000,
    );
    assert.match(status.failedDeliveries.lastError ?? '', /answered 400: no such subscriber/);
    assert.doesNotMatch(status.failedDeliveries.lastError ?? '', new RegExp(SECRET));
    // Refused for good: sent once per delivery, not retried by Temporal.
    const { rows } = await h.db.pool.query<{ n: number; attempts: number }>(
      `select count(*)::int as n, sum(attempts)::int as attempts
         from embedsync.failed_deliveries where pipeline = 'products_refused'`,
    );
    assert.equal(rows[0]?.n, status.failedDeliveries.count);
    assert.equal(refusing.attempts, rows[0]?.attempts);
    assert.equal(rows[0]?.attempts, rows[0]?.n);
  });

  it('a refused delivery is sent again, under its delivery id, and leaves status', async () => {
    const kept = await h.db.pool.query<{ delivery_id: string }>(
      `select delivery_id from embedsync.failed_deliveries where pipeline = 'products_refused'`,
    );
    const ids = kept.rows.map((r) => r.delivery_id).sort();
    assert.ok(ids.length > 0);
    // Still refusing: kept, its attempts counted, its wait doubled.
    const again = await redeliver(
      { pool: h.db.pool },
      { pipeline: 'products_refused', due: false },
    );
    assert.deepEqual([again.delivered, again.failed], [0, ids.length]);
    refusing.status = 200;
    const sent = await redeliver({ pool: h.db.pool }, { pipeline: 'products_refused', due: false });
    assert.deepEqual([sent.delivered, sent.failed], [ids.length, 0]);
    assert.deepEqual(refusing.accepted.map((r) => r.deliveryId).sort(), ids);
    const report = await gatherStatus(
      h.db.pool,
      { address: '', namespace: '', base: '', client: undefined, error: 'not asked' },
      'products_refused',
    );
    assert.equal(report.pipelines[0]?.failedDeliveries.count, 0);
  });

  it("a delivery's first attempt, in the sync's own workflow task, starts the user's workflow", async () => {
    // A table of its own with one sink, after the other tests' deliveries: a slot is free.
    await h.db.pool.query('create table flows (id int primary key)');
    await applyPipelines(
      h.db.pool,
      parsePipelineFile({
        pipelines: [
          {
            name: 'flows',
            source: { table: 'public.flows' },
            sinks: [{ workflow: { type: 'recordChanges', taskQueue: userQueue } }],
          },
        ],
      }),
    );
    await h.db.pool.query('insert into flows values (1)');
    const event = await waitFor("the user's workflow to get the insert", () =>
      Promise.resolve(started.find((e) => e.pipeline === 'flows')),
    );
    const sync = h.client.workflow.getHandle(event.deliveryId.replace(/\/\d+$/, ''));
    await sync.result();
    const first: Record<string, unknown>[] = [];
    const queued: string[] = [];
    for (const e of (await sync.fetchHistory()).events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (scheduled) queued.push(scheduled);
      const marker = e.markerRecordedEventAttributes;
      if (marker?.markerName !== 'core_local_activity') continue;
      const [facts] = marker.details?.data?.payloads ?? [];
      const [result] = marker.details?.result?.payloads ?? [];
      if (!facts || !result) continue;
      const { activity_type } = defaultPayloadConverter.fromPayload<{ activity_type: string }>(
        facts,
      );
      if (activity_type === 'deliverChangesFirst')
        first.push(defaultPayloadConverter.fromPayload<Record<string, unknown>>(result));
    }
    // Started with the worker's client from the local activity: nothing left for the queue.
    assert.deepEqual(first, [{ deliveryId: event.deliveryId, changes: 1, deadLettered: false }]);
    assert.deepEqual(queued, []);
  });
});

async function hookUrl(): Promise<string> {
  const { rows } = await h.db.pool.query<{ url: string }>(
    `select config->'sinks'->1->'webhook'->>'url' as url from embedsync.pipelines where name = 'products'`,
  );
  return rows[0]?.url ?? '';
}
