// Pacing follows what the provider says in its answers, through the real OpenAI client against the
// mock: a provider that counts tokens its own way (bytes/4) is charged as it counts, and limits no
// one declared are learned from its x-ratelimit-* headers, paced by every worker and shown in
// status. Asserted on the decisions recorded in the database and on the mock's own record.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import proto from '@temporalio/proto';
import { countTokens } from '../../src/chunking/tokens.js';
import type { PipelineInput } from '../../src/config/pipeline.js';
import { readRateObservations, type RateObservations } from '../../src/db/rate-observations.js';
import { mockTokenCount } from '../../src/mock-provider/limits.js';
import { gatherStatus } from '../../src/status/index.js';
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

setEnv({ EMBEDSYNC_TEST_OPENAI_KEY: 'sk-test-observed-0000' });

const MODEL = 'text-embedding-3-small';
const openai = (
  mockUrl: string,
  limits: { requestsPerMinute?: number; tokensPerMinute?: number } = {},
): PipelineInput['embedding'] => ({
  provider: 'openai',
  model: MODEL,
  dimensions: 64,
  baseURL: `${mockUrl}/v1`,
  apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY',
  ...limits,
});

const WORDS = ['river', 'stone', 'maple', 'harbor', 'lantern', 'copper'];
const body = (i: number): string =>
  Array.from({ length: 60 }, (_, k) => WORDS[(i + k) % WORDS.length]).join(' ');

async function insertRows(h: ProviderHarness, table: string, from: number, count: number) {
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

async function observed(h: ProviderHarness): Promise<RateObservations> {
  const row = (await readRateObservations(h.db.pool)).find(
    (r) => r.provider === 'openai' && r.model === MODEL,
  );
  assert.ok(row, 'no observations of openai');
  return row;
}

const answered = (h: ProviderHarness, status: number): number =>
  h.mock.requests.filter((r) => r.status === status).length;

describe('a provider that counts tokens its own way', () => {
  let h: ProviderHarness;
  before(async () => {
    h = await startProviderHarness('observed-bytes', {
      mock: { tokenCounting: 'bytes/4', tokensPerMinute: 600_000 },
      pipelines: (mockUrl) => [
        itemsPipeline('bytes', openai(mockUrl, { tokensPerMinute: 600_000 }), { batchSize: 5 }),
      ],
    });
  });
  after(async () => h.stop());

  it('is charged as it counts: the buckets learn the ratio of its count to the estimate', async () => {
    await insertRows(h, 'bytes', 1, 10);
    const accepted = h.mock.requests.filter((r) => r.status === 200);
    const inputs = accepted.flatMap((r) => r.inputs);
    // The ratio the mock's answers show: bytes/4 over cl100k, about 1.4 for these words.
    const truth =
      inputs.reduce((s, t) => s + mockTokenCount(t, 'bytes/4'), 0) /
      inputs.reduce((s, t) => s + countTokens(t), 0);
    assert.ok(truth > 1.3, `the texts count alike (${truth}): the test would prove nothing`);
    const first = await observed(h);
    assert.equal(first.answers, accepted.length, 'every answer was observed');
    assert.ok(
      Math.abs(first.tokenRatio - truth) / truth < 0.03,
      `learned ratio ${first.tokenRatio}, the mock counts ${truth}×`,
    );

    // Later requests take from the bucket what the provider will count, not the estimate.
    await insertRows(h, 'bytes', 11, 30);
    const later = await observed(h);
    const charged = later.chargedTokens - first.chargedTokens;
    const reported = later.reportedTokens - first.reportedTokens;
    assert.ok(reported > 0);
    assert.ok(
      Math.abs(charged / reported - 1) < 0.03,
      `charged ${charged} for ${reported} tokens the provider counted (${later.estimatedTokens - first.estimatedTokens} estimated)`,
    );
    assert.equal(answered(h, 429), 0);
    assert.equal(later.rateLimited, 0);
  });
});

async function queueRate(h: ProviderHarness): Promise<number | undefined> {
  const response = await h.client.workflowService.describeTaskQueue({
    namespace: h.client.options.namespace,
    taskQueue: { name: embedTaskQueue(h.taskQueue, 'openai') },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    reportConfig: true,
  });
  return response.config?.queueRateLimit?.rateLimit?.requestsPerSecond ?? undefined;
}

describe('limits no one declared', () => {
  let h: ProviderHarness;
  const RPM = 600;
  const TPM = 120_000;
  before(async () => {
    h = await startProviderHarness('observed-learned', {
      workers: 2,
      rateRefreshMs: 200,
      mock: { requestsPerMinute: RPM, tokensPerMinute: TPM, tokenCounting: 'bytes/4' },
      pipelines: (mockUrl) => [itemsPipeline('learned', openai(mockUrl), { batchSize: 5 })],
    });
  });
  after(async () => h.stop());

  it('are learned from the headers, paced by every worker and shown in status', async () => {
    assert.equal(await queueRate(h), undefined, 'nothing declared: unpaced at first');
    await insertRows(h, 'learned', 1, 10);
    const learned = await observed(h);
    assert.deepEqual([learned.requestsPerMinute, learned.tokensPerMinute], [RPM, TPM]);

    // Both workers plan from them: the Temporal server paces the queue, and the log says so.
    await waitFor('the queue to be paced', async () => (await queueRate(h)) === RPM / 60, 10_000);
    const changed = h.logLines
      .map((l) => JSON.parse(l) as { msg?: string; learned?: { tokensPerMinute?: number } })
      .filter((l) => l.msg === 'embedding rate limits changed');
    assert.ok(
      changed.some((l) => l.learned?.tokensPerMinute === TPM),
      'no worker planned from the learned limits',
    );

    // Later requests take their turns from the buckets at the learned rates.
    const waits = () =>
      seriesValue(h.metrics, 'embedsync_rate_bucket_wait_seconds_count', { provider: 'openai' });
    const turnsBefore = await waits();
    const sentBefore = h.mock.requests.length;
    await insertRows(h, 'learned', 11, 10);
    assert.ok(h.mock.requests.length > sentBefore);
    assert.equal(
      (await waits()) - turnsBefore,
      h.mock.requests.length - sentBefore,
      'every request took its turn from the buckets',
    );
    const { rows } = await h.db.pool.query<{ budget: string }>(
      `select budget from embedsync.rate_buckets where provider = 'openai' order by budget`,
    );
    assert.deepEqual(
      rows.map((r) => r.budget),
      ['requests', 'tokens'],
    );
    assert.equal(answered(h, 429), 0);

    // status (and its --json) shows what the provider said.
    const report = await gatherStatus(
      h.db.pool,
      {
        address: 'unused',
        namespace: 'unused',
        base: 'http://localhost',
        client: undefined,
        error: 'not asked',
      },
      'learned',
    );
    const shown = report.pipelines[0]?.learnedRateLimits;
    assert.deepEqual([shown?.requestsPerMinute, shown?.tokensPerMinute], [RPM, TPM]);
    assert.ok((shown?.tokenRatio ?? 0) > 1.3, `ratio ${shown?.tokenRatio}`);
    const json = JSON.parse(JSON.stringify(report)) as typeof report;
    assert.equal(json.pipelines[0]?.learnedRateLimits?.tokensPerMinute, TPM);
  });
});
