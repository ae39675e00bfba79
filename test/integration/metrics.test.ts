// Metrics: the worker's and the poller's /metrics, scraped over HTTP, say what the database and the
// provider say: rows, chunks and tokens written, requests, latency, backlog, dead letters,
// progress.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startBackfill } from '../../src/backfill/start.js';
import { getPipeline } from '../../src/db/catalog.js';
import { familyNames } from '../../src/metrics/exposition.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
let workerUrl: string;
let pollerUrl: string;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(url: string): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m?.[1] || !m[3]) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ''] = l[2] ?? '';
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { text, samples };
}

/** The value of one series (0 when absent), matching the labels given. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found.reduce((sum, s) => sum + s.value, 0);
}

const has = (samples: Sample[], name: string, labels: Record<string, string> = {}): boolean =>
  samples.some(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );

async function outboxSize(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(
    'select count(*)::int as n from embedsync.outbox',
  );
  return rows[0]?.n ?? -1;
}

async function vectorCount(
  table: string,
  pks: string[],
): Promise<{ rows: number; chunks: number }> {
  const { rows } = await h.db.pool.query<{ rows: number; chunks: number }>(
    `select count(distinct pk)::int as rows, count(*)::int as chunks from ${table} where pk = any($1::text[])`,
    [pks],
  );
  return rows[0] ?? { rows: 0, chunks: 0 };
}

describe('metrics', () => {
  before(async () => {
    h = await startHarness('metrics', { temporalMetrics: true });
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, productsPipeline());
    const poller = h.pollers[0];
    assert.ok(poller);
    // Port 0: any free port; the servers say which they got.
    workerUrl = await h.worker().serveMetrics({ host: '127.0.0.1', port: 0 });
    pollerUrl = await poller.serveMetrics({ host: '127.0.0.1', port: 0 });
  });
  after(async () => h.stop());

  it("the worker counts the rows, chunks and tokens it writes, its requests, and each sync's latency", async () => {
    const before = (await scrape(workerUrl)).samples;
    const p = { pipeline: 'products' };
    h.provider.reset();
    const long = 'A tent pole section that is long enough to need several chunks. '.repeat(20);
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into products (name, description, category, price) values
         ('Stove', 'Canister stove', 'outdoor', 50), ('Lantern', 'LED lantern', 'outdoor', 30),
         ('Poles', $1, 'outdoor', 20)
       returning id::text`,
      [long],
    );
    const pks = rows.map((r) => r.id);
    const mug = (
      await h.db.pool.query<{ id: string }>(
        `insert into products (name, description) values ('Mug', 'Enamel mug') returning id::text`,
      )
    ).rows;
    const written = await waitFor("the rows' vectors", async () => {
      const n = await vectorCount('products_embeddings', pks);
      return n.rows === 3 && (await outboxSize()) === 0 ? n : false;
    });
    // The fourth row's write may still be on its way: wait for the counters rather than sleep.
    const after = await waitFor("the counters to reach the database's count", async () => {
      const { samples } = await scrape(workerUrl);
      const written = (s: Sample[]) =>
        value(s, 'embedsync_rows_written_total', { ...p, outcome: 'written' });
      return written(samples) - written(before) === 4 ? samples : false;
    });
    const grew = (name: string, labels: Record<string, string> = p) =>
      value(after, name, labels) - value(before, name, labels);
    const all = await vectorCount('products_embeddings', [...pks, ...mug.map((r) => r.id)]);
    assert.ok(written.chunks > 3, 'the long row makes several chunks');
    assert.equal(grew('embedsync_chunks_written_total'), all.chunks);
    assert.equal(
      grew('embedsync_tokens_embedded_total', { ...p, provider: 'offline' }),
      h.provider.tokens,
    );
    assert.ok(h.provider.tokens > 0);
    const ok = { ...p, provider: 'offline', outcome: 'ok' };
    assert.equal(grew('embedsync_provider_requests_total', ok), h.provider.requests);
    assert.ok(h.provider.requests > 0);
    // At least one sync (the two statements may share one), each observed once, on the database's
    // clock.
    const syncs = grew('embedsync_sync_latency_seconds_count');
    assert.ok(syncs >= 1 && syncs <= 2, `syncs observed: ${syncs}`);
    assert.ok(grew('embedsync_sync_latency_seconds_sum') > 0);
    assert.equal(grew('embedsync_sync_latency_seconds_bucket', { ...p, le: '+Inf' }), syncs);
  });

  it("the worker's scrape carries the Temporal SDK's worker metrics", async () => {
    // A sync's stages run as local activities; a backfill's run on the task queue: run one, so
    // that the worker has recorded both kinds.
    const name = uniqueName('crate');
    await h.db.pool.query(
      `create table ${name} (id bigint primary key, name text, description text)`,
    );
    await h.db.pool.query(`insert into ${name} values (1, 'Crate', 'A wooden crate')`);
    await applyPipeline(h, productsPipeline({ name, source: { table: name }, metadata: [] }));
    const options = { taskQueue: h.taskQueue, instanceId: h.instanceId, rows: 1 };
    await (await startBackfill(h.client, await getPipeline(h.db.pool, name), options)).result();
    // Every SDK and process metric the dashboard charts, under the name the SDK really uses. The
    // SDK exports a metric once it first records it (a workflow completing just after its write,
    // say).
    const dashboard = readFileSync(
      new URL('../../docs/grafana/embedsync.json', import.meta.url),
      'utf8',
    );
    const names = [...dashboard.matchAll(/\b(?:temporal|process|nodejs)_[a-z0-9_]+/g)].map(
      (m) => m[0],
    );
    const charted = new Set(names.map((name) => name.replace(/_bucket$/, '')));
    assert.ok(charted.size >= 5);
    let missing: string[] = [];
    const { text, samples } = await waitFor('the charted SDK metrics', async () => {
      const scraped = await scrape(workerUrl);
      const exported = familyNames(scraped.text);
      missing = [...charted].filter((name) => !exported.has(name));
      return missing.length === 0 ? scraped : false;
    }).catch(() =>
      assert.fail(`the dashboard charts ${missing.join(', ')}, which the worker does not export`),
    );
    assert.ok(has(samples, 'temporal_activity_execution_latency_count'), 'activity latency');
    assert.ok(
      has(samples, 'temporal_local_activity_execution_latency_count'),
      'local activity latency',
    );
    assert.ok(
      samples.some((s) => s.name.startsWith('temporal_workflow_task_')),
      'workflow task metrics',
    );
    assert.ok(has(samples, 'process_cpu_user_seconds_total'), "the process's own metrics");
    // One family, one block: no name is declared twice.
    const types = text
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2]);
    assert.equal(new Set(types).size, types.length);
  });

  it("the poller reports each pipeline's backlog and its oldest change, read from the outbox", async () => {
    await waitFor('the outbox to drain', async () => (await outboxSize()) === 0);
    let samples = (await scrape(pollerUrl)).samples;
    assert.equal(value(samples, 'embedsync_catalog_up'), 1);
    assert.ok(has(samples, 'embedsync_outbox_backlog', { pipeline: 'products' }));
    assert.equal(value(samples, 'embedsync_outbox_backlog', { pipeline: 'products' }), 0);
    assert.equal(
      value(samples, 'embedsync_outbox_oldest_change_age_seconds', { pipeline: 'products' }),
      0,
    );
    await h.db.pool.query(
      `update embedsync.pipelines set sync_paused = true where name = 'products'`,
    );
    try {
      await h.db.pool.query(
        `insert into products (name, description) select 'Held ' || g, 'Waits' from generate_series(1, 5) g`,
      );
      samples = await waitFor('an aged backlog', async () => {
        const { samples } = await scrape(pollerUrl);
        const age = value(samples, 'embedsync_outbox_oldest_change_age_seconds', {
          pipeline: 'products',
        });
        return age > 0 ? samples : false;
      });
      assert.equal(value(samples, 'embedsync_outbox_backlog', { pipeline: 'products' }), 5);
    } finally {
      await h.db.pool.query(
        `update embedsync.pipelines set sync_paused = false where name = 'products'`,
      );
    }
    await waitFor(
      'the backlog to drain',
      async () =>
        value((await scrape(pollerUrl)).samples, 'embedsync_outbox_backlog', {
          pipeline: 'products',
        }) === 0,
    );
  });

  it("the poller reports each pipeline's dead letters", async () => {
    const count = async () =>
      value((await scrape(pollerUrl)).samples, 'embedsync_dead_letters', { pipeline: 'products' });
    assert.ok(
      has((await scrape(pollerUrl)).samples, 'embedsync_dead_letters', { pipeline: 'products' }),
    );
    const base = await count();
    const { rows } = await h.db.pool.query<{ id: number }>(
      `insert into embedsync.dead_letters (pipeline, pk, generation, content_hash, error)
       values ('products', 'no-such-row', 1, 'refused-hash', 'the provider refused the input') returning id`,
    );
    try {
      assert.equal(await count(), base + 1);
    } finally {
      await h.db.pool.query('delete from embedsync.dead_letters where id = $1', [rows[0]?.id]);
    }
    assert.equal(await count(), base);
  });

  it("a backfill's progress shows on the poller, and its rows on the worker, without a sync latency", async () => {
    const name = uniqueName('shelf');
    await h.db.pool.query(
      `create table ${name} (id bigint primary key, name text, description text)`,
    );
    await h.db.pool.query(
      `insert into ${name} select g, 'Shelf item ' || g, 'Kept on shelf ' || g from generate_series(1, 40) g`,
    );
    await applyPipeline(
      h,
      productsPipeline({ name, source: { table: name }, metadata: [], batchSize: 10 }),
    );
    const before = (await scrape(workerUrl)).samples;
    const options = { taskQueue: h.taskQueue, instanceId: h.instanceId, rows: 40 };
    const handle = await startBackfill(h.client, await getPipeline(h.db.pool, name), options);
    await handle.result();
    const progress = (await scrape(pollerUrl)).samples;
    assert.equal(value(progress, 'embedsync_backfill_synced_rows', { pipeline: name }), 40);
    assert.equal(value(progress, 'embedsync_backfill_total_rows', { pipeline: name }), 40);
    const after = (await scrape(workerUrl)).samples;
    const labels = { pipeline: name, outcome: 'written' };
    const written = (s: Sample[]) => value(s, 'embedsync_rows_written_total', labels);
    assert.equal(written(after) - written(before), 40);
    assert.equal(value(after, 'embedsync_sync_latency_seconds_count', { pipeline: name }), 0);
  });

  it('anything but GET /metrics is answered with where the metrics are', async () => {
    const res = await fetch(new URL('/', workerUrl));
    assert.equal(res.status, 404);
    assert.match(await res.text(), /GET \/metrics/);
  });
});
