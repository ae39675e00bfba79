// The embedding queue of a provider is paced by the Temporal server to the pipeline's
// requests-per-minute: many batches at once still reach the provider no faster than allowed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../helpers/wait.js';
import { chunksOf, itemsPipeline, setEnv, startProviderHarness, type ProviderHarness } from './providers-helpers.js';

let h: ProviderHarness;
const RPM = 120;

setEnv({ EMBEDSYNC_TEST_OPENAI_KEY: 'sk-test-rate-0000' });

describe('rate limits', () => {
  before(async () => {
    h = await startProviderHarness('rate', {
      pipelines: (mockUrl) => [
        // One key per batch, so each batch is one activity making one request.
        itemsPipeline('paced', { provider: 'openai', model: 'text-embedding-3-small', dimensions: 64, baseURL: `${mockUrl}/v1`, apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY', requestsPerMinute: RPM }, { batchSize: 1 }),
      ],
    });
  });
  after(async () => h.stop());

  it('the worker paces the provider queue to the requests per minute, across all batches', async () => {
    const paced = h.logLines.map((l) => JSON.parse(l) as { msg?: string; provider?: string; activitiesPerSecond?: number }).find((l) => l.msg === 'embedding queue paced');
    assert.equal(paced?.provider, 'openai');
    assert.equal(paced?.activitiesPerSecond, RPM / 60);

    const rows = 10;
    await h.db.pool.query(`insert into paced (id, title, body) select g, 'Item ' || g, 'Body ' || g from generate_series(1, $1) g`, [rows]);
    await waitFor('every row', async () => (await Promise.all(Array.from({ length: rows }, (_, i) => chunksOf(h, 'paced', String(i + 1))))).every((c) => c.length === 1), 30_000);

    const times = h.mock.requests.filter((r) => r.status === 200).map((r) => r.at).sort((a, b) => a - b);
    assert.equal(times.length, rows);
    const span = (times[times.length - 1] ?? 0) - (times[0] ?? 0);
    const rate = ((rows - 1) * 1000) / span;
    // Unpaced, ten one-row batches reach the provider within a few hundred milliseconds.
    assert.ok(rate <= (RPM / 60) * 1.25, `${rate.toFixed(2)} requests/s, over the ${RPM / 60}/s the limit allows`);
  });
});
