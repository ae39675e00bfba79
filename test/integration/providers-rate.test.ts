// Rate limits are kept by the whole fleet: the provider's embedding queue is paced by the Temporal
// server to the requests per minute, every request takes its tokens from a bucket all workers
// share, and a changed limit is followed by the running workers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import proto from '@temporalio/proto';
import { applyPipelines } from '../../src/capture/apply.js';
import { countTokens } from '../../src/chunking/tokens.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import { readPipelineFacts } from '../../src/status/index.js';
import { embedTaskQueue } from '../../src/temporal/names.js';
import { seriesValue } from '../helpers/metrics.js';
import { waitFor } from '../helpers/wait.js';
import {
  chunksOf,
  itemsPipeline,
  setEnv,
  startProviderHarness,
  type ProviderHarness,
} from './providers-helpers.js';

setEnv({ EMBEDSYNC_TEST_OPENAI_KEY: 'sk-test-rate-0000' });

const openai = (
  mockUrl: string,
  limits: { requestsPerMinute?: number; tokensPerMinute?: number },
): PipelineInput['embedding'] => ({
  provider: 'openai',
  model: 'text-embedding-3-small',
  dimensions: 64,
  baseURL: `${mockUrl}/v1`,
  apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY',
  ...limits,
});

/** Accepted requests' arrival times at the mock, in order. */
const acceptedTimes = (h: ProviderHarness): number[] =>
  h.mock.requests
    .filter((r) => r.status === 200)
    .map((r) => r.at)
    .sort((a, b) => a - b);

async function insertRows(
  h: ProviderHarness,
  table: string,
  from: number,
  count: number,
  body: (i: number) => string = (i) => `Body ${i}`,
): Promise<void> {
  const ids = Array.from({ length: count }, (_, i) => from + i);
  await h.db.pool.query(
    `insert into ${table} (id, title, body) select id, 'Item ' || id, b from unnest($1::int[], $2::text[]) as t(id, b)`,
    [ids, ids.map(body)],
  );
  await waitFor(
    `rows ${from}–${from + count - 1} embedded`,
    async () =>
      (await Promise.all(ids.map((id) => chunksOf(h, table, String(id))))).every(
        (c) => c.length > 0,
      ),
    60_000,
  );
}

async function queueRate(h: ProviderHarness): Promise<number | undefined> {
  const response = await h.client.workflowService.describeTaskQueue({
    namespace: h.client.options.namespace,
    taskQueue: { name: embedTaskQueue(h.taskQueue, 'openai') },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    reportConfig: true,
  });
  return response.config?.queueRateLimit?.rateLimit?.requestsPerSecond ?? undefined;
}

describe('requests per minute', () => {
  let h: ProviderHarness;
  const RPM = 120;
  before(async () => {
    h = await startProviderHarness('rate', {
      // One key per batch, so each batch is one activity making one request.
      pipelines: (mockUrl) => [
        itemsPipeline('paced', openai(mockUrl, { requestsPerMinute: RPM }), { batchSize: 1 }),
      ],
    });
  });
  after(async () => h.stop());

  it('the Temporal server paces the provider queue to the requests per minute, across all batches', async () => {
    assert.equal(await queueRate(h), RPM / 60);
    const rows = 10;
    const inserted = Date.now();
    await insertRows(h, 'paced', 1, rows);
    const times = acceptedTimes(h);
    assert.equal(times.length, rows);
    // Unpaced, ten one-row batches reach the provider within a few hundred milliseconds. Paced, the
    // last cannot arrive sooner after the insert than the pace allows (with a quarter's slack for
    // the server's bursts); a slow machine only makes it later.
    const span = (times[rows - 1] ?? 0) - inserted;
    const fastest = ((rows - 1) * 1000) / ((RPM / 60) * 1.25);
    assert.ok(
      span >= fastest,
      `${rows} requests within ${span} ms of the insert; the limit allows no sooner than ${fastest} ms`,
    );
  });
});

describe('tokens per minute', () => {
  let h: ProviderHarness;
  const TPM = 60_000; // 1,000 tokens a second; a full bucket holds one second of it
  before(async () => {
    h = await startProviderHarness('tokens', {
      workers: 2,
      pipelines: (mockUrl) => [
        itemsPipeline('budgeted', openai(mockUrl, { tokensPerMinute: TPM }), { batchSize: 5 }),
      ],
    });
  });
  after(async () => h.stop());

  it('two workers together never send more tokens than the bucket and its refill allow', async () => {
    // 40 rows of about 150 tokens: 6,000 tokens, six times what a full bucket holds.
    const inserted = Date.now();
    await insertRows(h, 'budgeted', 1, 40, (i) =>
      Array.from({ length: 150 }, (_, k) => ['river', 'stone', 'maple'][(i + k) % 3]).join(' '),
    );
    const accepted = h.mock.requests.filter((r) => r.status === 200).sort((a, b) => a.at - b.at);
    const tokens = accepted.map((r) => r.inputs.reduce((sum, t) => sum + countTokens(t), 0));
    const total = tokens.reduce((a, b) => a + b, 0);
    assert.ok(total > 6000, `${total} tokens`);
    assert.ok(
      accepted.length >= 8,
      `${accepted.length} requests: batches were sent as they came, not all at once`,
    );
    const perSecond = TPM / 60;
    const burst = perSecond;
    // The bucket was full when the rows were inserted, and a request reaches the mock only after
    // its turn: what has arrived by any moment was let go by then, so it fits the burst plus the
    // refill since the insert, however slow the machine (slowness only delays arrivals) and in
    // whatever order they arrive.
    let sent = 0;
    accepted.forEach((r, i) => {
      sent += tokens[i] ?? 0;
      const allowed = burst + perSecond * ((r.at - inserted) / 1000);
      assert.ok(
        sent <= allowed,
        `${sent} tokens by ${r.at - inserted} ms; the budget allows ${Math.round(allowed)}`,
      );
    });
    const { rows } = await h.db.pool.query<{ level: number }>(
      `select level from embedsync.rate_buckets where provider = 'openai' and budget = 'tokens'`,
    );
    assert.ok(
      (rows[0]?.level ?? Infinity) < burst,
      'the bucket in the database shows what was taken',
    );
    // Every request took its turn, and six buckets' worth of tokens cannot all have gone without
    // waiting.
    const waits = (series: string) =>
      seriesValue(h.metrics, `embedsync_rate_bucket_wait_seconds_${series}`, {
        provider: 'openai',
      });
    assert.equal(await waits('count'), h.mock.requests.length);
    assert.ok((await waits('sum')) > 0, 'no request waited for its turn');
  });

  it('a 429 holds every worker back for as long as the provider asked', async () => {
    h.mock.reset();
    h.mock.options.retryHint = 'retry-after-ms';
    h.mock.inject({ kind: 'rate-limit', retryAfterMs: 1500 });
    const first = insertRows(h, 'budgeted', 41, 1);
    await waitFor(
      'the 429',
      () => Promise.resolve(h.mock.requests.some((r) => r.status === 429)),
      10_000,
    );
    // Another batch, made after the 429: without the hold it would be sent at once.
    await insertRows(h, 'budgeted', 42, 1);
    await first;
    const limitedAt = h.mock.requests.find((r) => r.status === 429)?.at ?? 0;
    const after429 = acceptedTimes(h).map((t) => t - limitedAt);
    assert.equal(after429.length, 2);
    assert.ok(
      after429.every((ms) => ms >= 1500 - 50),
      `requests ${after429.join(', ')} ms after the 429 that asked for 1,500`,
    );
  });
});

describe('a changed limit', () => {
  let h: ProviderHarness;
  let mockUrl = '';
  const pipeline = (limits: { requestsPerMinute?: number; tokensPerMinute?: number }) =>
    parsePipelines({
      pipelines: [itemsPipeline('live', openai(mockUrl, limits), { batchSize: 1 })],
    });
  before(async () => {
    h = await startProviderHarness('live-rate', {
      rateRefreshMs: 200,
      pipelines: (url) => {
        mockUrl = url;
        return [itemsPipeline('live', openai(url, { requestsPerMinute: 30 }), { batchSize: 1 })];
      },
    });
  });
  after(async () => h.stop());

  it('is followed by the running workers, without a restart', async () => {
    assert.equal(await queueRate(h), 0.5);
    const [applied] = await applyPipelines(
      h.db.pool,
      pipeline({ requestsPerMinute: 600, tokensPerMinute: 50_000 }),
    );
    assert.equal(applied?.outcome, 'updated');
    await waitFor(
      'the server’s queue rate to follow',
      async () => (await queueRate(h)) === 10,
      10_000,
    );
    const changed = h.logLines
      .map(
        (l) =>
          JSON.parse(l) as { msg?: string; requestsPerMinute?: number; tokensPerMinute?: number },
      )
      .find((l) => l.msg === 'embedding rate limits changed');
    assert.deepEqual(
      { rpm: changed?.requestsPerMinute, tpm: changed?.tokensPerMinute },
      { rpm: 600, tpm: 50_000 },
    );
    const [facts] = await readPipelineFacts(h.db.pool, 'live');
    assert.deepEqual(
      { rpm: facts?.requestsPerMinute, tpm: facts?.tokensPerMinute },
      { rpm: 600, tpm: 50_000 },
      'status shows the declared limits',
    );

    // Six one-row batches take their turns from the requests bucket of the new limit: it holds ten
    // (one second at 10/s) and refills, so after six turns at least four are left, however slowly
    // they came. At the old limit (0.5/s, holding one) each turn would leave it at zero or below.
    await insertRows(h, 'live', 1, 6);
    assert.equal(acceptedTimes(h).length, 6);
    const { rows } = await h.db.pool.query<{ level: number }>(
      `select level from embedsync.rate_buckets where provider = 'openai' and budget = 'requests'`,
    );
    assert.ok(
      (rows[0]?.level ?? -Infinity) >= 4,
      `requests bucket at ${rows[0]?.level}: the turns were not taken at 10/s`,
    );

    // Removing the limit removes the server's pace.
    await applyPipelines(h.db.pool, pipeline({}));
    await waitFor(
      'the server’s queue rate to be removed',
      async () => (await queueRate(h)) === undefined,
      10_000,
    );
  });
});
