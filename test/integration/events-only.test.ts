// Events-only pipelines (decision 23): a table with no text to embed, whose every change reaches a
// LISTENing client and a signed webhook straight after the outbox, with no provider call and no
// vector table; a TRUNCATE arrives as `truncated: true`; embedding commands refuse the pipeline by
// name; status shows where its changes go; remove takes its capture away.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import pg from 'pg';
import { applyPipelines, removePipeline } from '../../src/capture/apply.js';
import { ConfigError, parsePipelineFile, type PipelineInput } from '../../src/config/pipeline.js';
import {
  EventsOnlyPipelineError,
  getAnyPipeline,
  getPipeline,
  listPipelines,
  resolvePipeline,
} from '../../src/db/catalog.js';
import type { ChangeEvent } from '../../src/sinks/payload.js';
import { verifySignature } from '../../src/sinks/payload.js';
import { gatherStatus } from '../../src/status/index.js';
import { search } from '../../src/search/search.js';
import { sinkTaskQueue } from '../../src/temporal/names.js';
import { DEFAULT_SINK_CONCURRENCY } from '../../src/worker/worker.js';
import { productsPipeline, startHarness, type Harness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'whsec-events-only-test-91ab';
process.env.EMBEDSYNC_TEST_EVENTS_SECRET = SECRET;
const channel = 'order_changes';

const ORDERS_TABLE = `
  create table orders (
    id        bigint primary key,
    customer  bigint not null,
    total     numeric(10, 2) not null,
    status    smallint not null default 0,
    placed_at timestamptz not null default now()
  )`;

/** A signed-webhook receiver that keeps what it accepted and refuses a bad signature. */
class Receiver {
  readonly accepted: ChangeEvent[] = [];
  badSignatures = 0;
  private server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      if (!verifySignature(body, SECRET, req.headers['x-embedsync-signature'] as string)) {
        this.badSignatures += 1;
        res.writeHead(401).end('bad signature');
        return;
      }
      this.accepted.push(JSON.parse(body) as ChangeEvent);
      res.writeHead(204).end();
    });
  });

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/orders`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const ordersPipeline = (url: string): PipelineInput =>
  ({
    name: 'orders',
    source: { table: 'public.orders' },
    sinks: [
      { notify: channel },
      {
        webhook: { url, secretEnv: 'EMBEDSYNC_TEST_EVENTS_SECRET', columns: ['status', 'total'] },
      },
    ],
  }) as unknown as PipelineInput;

const apply = async (h: Harness, ...pipelines: unknown[]) =>
  applyPipelines(h.db.pool, parsePipelineFile({ pipelines }));

/** The last state each key reached, by the order the sink received them (null: deleted). */
function lastStates(events: ChangeEvent[]): Map<string, Record<string, unknown> | null> {
  const states = new Map<string, Record<string, unknown> | null>();
  for (const e of events)
    for (const c of e.changes)
      states.set(c.key, c.operation === 'delete' ? null : (c.columns ?? {}));
  return states;
}

let h: Harness;
let listener: pg.Client;
const notified: ChangeEvent[] = [];
const hook = new Receiver();
let url = '';

describe('events-only pipelines', () => {
  before(async () => {
    h = await startHarness('events-only');
    await h.db.pool.query(ORDERS_TABLE);
    listener = new pg.Client({ connectionString: h.db.url });
    await listener.connect();
    listener.on('notification', (n) => {
      if (n.channel === channel && n.payload) notified.push(JSON.parse(n.payload) as ChangeEvent);
    });
    await listener.query(`listen ${channel}`);
    url = await hook.listen();
  });
  after(async () => {
    await listener.end();
    await h.stop();
    await hook.close();
  });

  it('apply records the pipeline with no vector table and no provider', async () => {
    const [result] = await apply(h, ordersPipeline(url));
    assert.equal(result?.outcome, 'created');
    assert.equal(result?.vectors, '');
    const { rows } = await h.db.pool.query<{ vt: string | null; provider: string | null }>(
      `select to_regclass('public.orders_embeddings')::text as vt,
              (select provider from embedsync.pipeline_status where pipeline = 'orders') as provider`,
    );
    assert.deepEqual(rows[0], { vt: null, provider: null });
    const p = await getAnyPipeline(h.db.pool, 'orders');
    assert.ok('eventsOnly' in p);
    assert.deepEqual(
      p.primaryKey.map((k) => k.name),
      ['id'],
    );
    // Applied again unchanged.
    assert.equal((await apply(h, ordersPipeline(url)))[0]?.outcome, 'unchanged');
  });

  it('delivers every change of every column to each sink, and a TRUNCATE as truncated', async () => {
    const callsBefore = h.provider.requests;
    await h.db.pool.query(
      `insert into orders (id, customer, total) select i, i % 7, i * 10 from generate_series(1, 24) i`,
    );
    // A change of a number, not of any text: delivered all the same.
    await h.db.pool.query('update orders set status = 1 where id <= 12');
    await h.db.pool.query('update orders set total = total + 0.5 where id % 2 = 0');
    await h.db.pool.query('delete from orders where id in (3, 6, 9)');
    // A key change is a delete of the old key and an upsert of the new one.
    await h.db.pool.query('update orders set id = 100 where id = 24');

    const { rows } = await h.db.pool.query<{ id: string; status: number; total: string }>(
      'select id::text, status, total::text from orders',
    );
    const expected = new Map<string, Record<string, unknown> | null>(
      rows.map((r) => [r.id, { status: r.status, total: Number(r.total) }]),
    );
    for (const gone of ['3', '6', '9', '24']) expected.set(gone, null);

    const matches = (events: ChangeEvent[], withColumns: boolean): boolean => {
      const seen = lastStates(events);
      return [...expected].every(([key, want]) => {
        if (!seen.has(key)) return false;
        const got = seen.get(key) ?? null;
        if (want === null || got === null) return want === got;
        return !withColumns || (got.status === want.status && got.total === want.total);
      });
    };
    await waitFor('every final state at the notify listener', () =>
      Promise.resolve(matches(notified, false)),
    );
    await waitFor('every final state at the webhook', () =>
      Promise.resolve(matches(hook.accepted, true)),
    );
    assert.equal(hook.badSignatures, 0);
    assert.ok(notified.every((e) => e.pipeline === 'orders' && e.changes.length > 0));
    // Notify carries keys only; the webhook the columns it names.
    assert.ok(notified.flatMap((e) => e.changes).every((c) => c.columns === undefined));
    assert.equal(h.provider.requests, callsBefore, 'nothing was embedded');

    await h.db.pool.query('truncate orders');
    const truncated = (events: ChangeEvent[]) =>
      events.find((e) => e.truncated === true && e.changes.length === 0);
    await waitFor('the TRUNCATE at the notify listener', () =>
      Promise.resolve(truncated(notified)),
    );
    await waitFor('the TRUNCATE at the webhook', () => Promise.resolve(truncated(hook.accepted)));

    const { rows: left } = await h.db.pool.query<{ n: number }>(
      `select count(*)::int as n from embedsync.outbox where pipeline = 'orders'`,
    );
    assert.equal(left[0]?.n, 0, 'the outbox is drained');
  });

  it('embedding work refuses it by name; status shows where its changes go', async () => {
    for (const attempt of [
      () => resolvePipeline(h.db.pool, 'orders'),
      () => resolvePipeline(h.db.pool, 'public.orders'),
      () => getPipeline(h.db.pool, 'orders'),
      () => search(h.db.pool, new Map(), 'orders', 'anything'),
    ]) {
      await assert.rejects(attempt, (err: Error) => {
        assert.ok(err instanceof EventsOnlyPipelineError);
        assert.match(err.message, /pipeline orders is events-only: it embeds nothing/);
        return true;
      });
    }
    assert.ok(!(await listPipelines(h.db.pool)).some((p) => p.name === 'orders'));

    const report = await gatherStatus(
      h.db.pool,
      { address: '', namespace: '', base: '', client: undefined, error: 'not asked' },
      'orders',
    );
    const [orders] = report.pipelines;
    assert.equal(orders?.pipeline, 'orders');
    assert.deepEqual(orders?.eventsOnly?.sinks, [
      `notify ${channel}`,
      `webhook ${new URL(url).origin}/hooks/orders`,
    ]);
    assert.equal(orders?.outboxBacklog, 0);
  });

  it('a dropped column a sink names holds the pipeline, naming the fix; applying the fix delivers what waited', async () => {
    await h.db.pool.query(
      `create table tickets (id int primary key, state text, note text);
       insert into tickets values (1, 'open', 'a')`,
    );
    const tickets = (columns: string[]) => ({
      name: 'tickets',
      source: { table: 'public.tickets' },
      sinks: [{ webhook: { url, secretEnv: 'EMBEDSYNC_TEST_EVENTS_SECRET', columns } }],
    });
    await apply(h, tickets(['state', 'note']));
    // A column no sink names comes and goes freely.
    await h.db.pool.query(
      'alter table tickets add column extra int; alter table tickets drop column extra',
    );
    await h.db.pool.query('alter table tickets drop column note');
    await h.db.pool.query(`update tickets set state = 'closed' where id = 1`);
    const held = await waitFor('the pipeline to be held', async () => {
      const { rows } = await h.db.pool.query<{ state: string; state_reason: string | null }>(
        `select state, state_reason from embedsync.pipelines where name = 'tickets'`,
      );
      return rows[0]?.state === 'schema_changed' ? rows[0] : false;
    });
    assert.match(
      held.state_reason ?? '',
      /column "note" of public\.tickets is gone: remove it from the columns of the pipeline's sinks \(or restore it\), then run npx embedsync apply/,
    );
    // The user's writes go on; their changes wait in the outbox.
    await h.db.pool.query(`insert into tickets values (2, 'open')`);
    const [result] = await apply(h, tickets(['state']));
    assert.equal(result?.heldBecause, undefined);
    const states = (key: string) =>
      hook.accepted
        .filter((e) => e.pipeline === 'tickets')
        .flatMap((e) => e.changes)
        .filter((c) => c.key === key)
        .map((c) => c.columns?.state);
    await waitFor('the changes that waited at the webhook', () =>
      Promise.resolve(states('1').includes('closed') && states('2').includes('open')),
    );
  });

  it('a slow webhook gets at most a few deliveries at once from a worker, all of them in the end', async () => {
    // Each answer takes 300 ms; ten batches' deliveries are due together.
    let inFlight = 0;
    let most = 0;
    const seen = new Set<string>();
    const slow = http.createServer((req, res) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const event = JSON.parse(Buffer.concat(parts).toString('utf8')) as ChangeEvent;
        setTimeout(() => {
          inFlight -= 1;
          for (const c of event.changes) seen.add(c.key);
          res.writeHead(204).end();
        }, 300);
      });
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/slow`;
      await h.db.pool.query('create table events_slow (id int primary key)');
      await apply(h, {
        name: 'events_slow',
        source: { table: 'public.events_slow' },
        batchSize: 1,
        sinks: [{ webhook: { url: slowUrl, secretEnv: 'EMBEDSYNC_TEST_EVENTS_SECRET' } }],
      });
      await h.db.pool.query('insert into events_slow select generate_series(1, 10)');
      await waitFor('every key at the slow webhook', () => Promise.resolve(seen.size === 10));
      assert.ok(most >= 1 && most <= DEFAULT_SINK_CONCURRENCY, `${most} deliveries at once`);
    } finally {
      slow.closeAllConnections();
      await new Promise<void>((resolve) => slow.close(() => resolve()));
    }
  });

  it("a delivery's first attempt runs in the sync's own workflow task; one the sink fails goes to the sinks' task queue", async () => {
    let failNext = 0;
    const received: ChangeEvent[] = [];
    const flaky = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        if (failNext > 0) {
          failNext -= 1;
          res.writeHead(503).end('busy');
          return;
        }
        received.push(JSON.parse(Buffer.concat(parts).toString('utf8')) as ChangeEvent);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
    try {
      const flakyUrl = `http://127.0.0.1:${(flaky.address() as AddressInfo).port}/flaky`;
      await h.db.pool.query('create table events_first (id int primary key)');
      await apply(h, {
        name: 'events_first',
        source: { table: 'public.events_first' },
        sinks: [{ webhook: { url: flakyUrl, secretEnv: 'EMBEDSYNC_TEST_EVENTS_SECRET' } }],
      });
      /** The completed sync's local activities and queued activities, from its history. */
      const deliveredBy = async (key: string) => {
        const event = await waitFor(`key ${key} at the webhook`, () =>
          Promise.resolve(received.find((e) => e.changes.some((c) => c.key === key))),
        );
        const workflowId = event.deliveryId.replace(/\/\d+$/, '');
        const handle = h.client.workflow.getHandle(workflowId);
        await handle.result();
        const events = (await handle.fetchHistory()).events ?? [];
        const local = events.flatMap((e) => {
          const marker = e.markerRecordedEventAttributes;
          const data = marker?.markerName === 'core_local_activity' && marker.details?.data;
          const payload = data ? data.payloads?.[0] : undefined;
          if (!payload) return [];
          return [
            defaultPayloadConverter.fromPayload<{ activity_type: string }>(payload).activity_type,
          ];
        });
        const queued = events.flatMap((e) => {
          const a = e.activityTaskScheduledEventAttributes;
          return a ? [`${a.activityType?.name ?? ''} on ${a.taskQueue?.name ?? ''}`] : [];
        });
        return { local, queued };
      };

      await h.db.pool.query('insert into events_first values (1)');
      assert.deepEqual(await deliveredBy('1'), { local: ['deliverChangesFirst'], queued: [] });

      failNext = 1;
      await h.db.pool.query('insert into events_first values (2)');
      assert.deepEqual(await deliveredBy('2'), {
        local: ['deliverChangesFirst'],
        queued: [`deliverChanges on ${sinkTaskQueue(h.taskQueue)}`],
      });
      assert.equal(failNext, 0, 'the first attempt met the 503');
    } finally {
      flaky.closeAllConnections();
      await new Promise<void>((resolve) => flaky.close(() => resolve()));
    }
  });

  it('a pipeline does not change kind in place, and one with no sinks is refused', async () => {
    await h.db.pool.query(
      `create table notes (id bigint primary key, body text);
       insert into notes values (1, 'a note')`,
    );
    const embedded = productsPipeline({
      name: 'notes',
      source: { table: 'public.notes' },
      embed: { columns: ['body'] },
      metadata: [],
    });
    await apply(h, embedded);
    const eventsOnly = {
      name: 'notes',
      source: { table: 'public.notes' },
      sinks: [{ notify: 'n' }],
    };
    await assert.rejects(apply(h, eventsOnly), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /pipeline "notes" embeds into public\.notes_embeddings; to change that, remove it/,
      );
      return true;
    });
    await assert.rejects(
      apply(h, { ...ordersPipeline(url), name: 'orders', sinks: [] }),
      /needs at least one sink/,
    );
    await assert.rejects(
      apply(h, {
        name: 'orders',
        source: { table: 'public.orders' },
        sinks: [{ webhook: { url, secretEnv: 'X', columns: ['nope'] } }],
      }),
      /sinks\[0\]\.webhook\.columns\[0\]: column "nope" does not exist in public\.orders/,
    );
  });

  it('remove takes its capture away', async () => {
    await removePipeline(h.db.pool, 'orders');
    await h.db.pool.query('insert into orders (id, customer, total) values (1, 1, 1)');
    const { rows } = await h.db.pool.query<{ n: number }>(
      `select count(*)::int as n from embedsync.outbox where pipeline = 'orders'`,
    );
    assert.equal(rows[0]?.n, 0);
  });
});
