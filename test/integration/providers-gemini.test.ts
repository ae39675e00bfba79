// Gemini end to end: the real @google/genai client, driven by real sync workflows against the mock
// provider's Gemini API: what goes on the wire, what reaches the vector table and search, how a 429,
// a daily quota and a refused input are handled, and that the API key reaches no history or log.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { temporal } from '@temporalio/proto';
import { search } from '../../src/search/search.js';
import { createProviders } from '../../src/providers/index.js';
import { readProviderEnv } from '../../src/config/env.js';
import { waitFor } from '../helpers/wait.js';
import {
  activityFailure,
  chunksOf,
  itemsPipeline,
  setEnv,
  startProviderHarness,
  workflowIds,
  captureConsole,
  secretPlaces,
  type ProviderHarness,
} from './providers-helpers.js';

const tag = randomBytes(6).toString('hex');
// Shaped like Google's keys (AIza + 35 characters).
const GOOD_KEY = `AIzaGood${tag}${'0'.repeat(35 - 4 - tag.length)}`;
const WRONG_KEY = `AIzaWrong${tag}${'9'.repeat(35 - 5 - tag.length)}`;
const POISON = 'POISON-GEMINI';
setEnv({ EMBEDSYNC_TEST_GEMINI_KEY: GOOD_KEY, EMBEDSYNC_TEST_GEMINI_WRONG_KEY: WRONG_KEY });

// Whatever the SDKs print on their own goes to the console: captured for the secrets scan.
const consoleLines = captureConsole();

let h: ProviderHarness;
let nextId = 1;

async function insert(table: string, title: string, body: string): Promise<string> {
  const id = String(nextId++);
  await h.db.pool.query(
    `insert into ${table} (id, title, body, category) values ($1, $2, $3, 'test')`,
    [id, title, body],
  );
  return id;
}

const requestsWith = (text: string) =>
  h.mock.requests.filter((r) => r.inputs.some((i) => i.includes(text)));

const ms = (t: temporal.api.workflow.v1.IPendingActivityInfo['scheduledTime']): number =>
  Number(t?.seconds ?? 0) * 1000 + Math.round((t?.nanos ?? 0) / 1e6);

/** The failed sync workflows of one pipeline. */
async function failedSyncs(pipeline: string): Promise<string[]> {
  return (await workflowIds(h, 'Failed')).filter((id) => id.startsWith(`sync:${pipeline}:`));
}

const gemini = (mockUrl: string, dimensions: number, apiKeyEnv = 'EMBEDSYNC_TEST_GEMINI_KEY') =>
  ({
    provider: 'gemini',
    model: 'gemini-embedding-001',
    dimensions,
    baseURL: mockUrl,
    apiKeyEnv,
  }) as const;

describe('Gemini through @google/genai, end to end', () => {
  before(async () => {
    h = await startProviderHarness('gemini', {
      pipelines: (mockUrl) => [
        // Paced (generously), so embedding runs as an activity on the provider's task queue, whose
        // retries the server schedules and describes.
        itemsPipeline('gm', { ...gemini(mockUrl, 768), requestsPerMinute: 60_000 }),
        itemsPipeline('gm_quota', gemini(mockUrl, 256)),
        itemsPipeline('gm_wrong_key', gemini(mockUrl, 256, 'EMBEDSYNC_TEST_GEMINI_WRONG_KEY')),
      ],
      mock: { apiKey: GOOD_KEY, echoKeyInErrors: true },
    });
  });
  after(async () => h.stop());
  beforeEach(() => {
    h.mock.reset();
    h.mock.options.poisonMarker = undefined;
    h.mock.options.requestsPerMinute = undefined;
  });

  it('syncs rows into the vector table: one batchEmbedContents request as RETRIEVAL_DOCUMENT, unit vectors', async () => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into gm (id, title, body, category)
       select g, 'Tent ' || g, 'Two-person tent number ' || g, 'test' from generate_series(100, 103) g
       returning id::text`,
    );
    await waitFor('four rows', async () =>
      (await Promise.all(rows.map((r) => chunksOf(h, 'gm', r.id)))).every((c) => c.length === 1),
    );
    const calls = h.mock.requests.filter((r) => r.api === 'gemini');
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.inputs.length, 4);
    assert.equal(calls[0]?.path, '/v1/models/gemini-embedding-001:batchEmbedContents');
    assert.deepEqual(calls[0]?.params, {
      method: 'batchEmbedContents',
      taskType: 'RETRIEVAL_DOCUMENT',
      outputDimensionality: 768,
      auth: 'x-goog-api-key',
    });
    // The mock answers 768 dimensions shorter than unit length, as Gemini does; stored normalised.
    const { rows: norms } = await h.db.pool.query<{ dims: number; norm: number }>(
      `select vector_dims(embedding) as dims, vector_norm(embedding) as norm from gm_embeddings`,
    );
    assert.equal(norms.length, 4);
    for (const n of norms) {
      assert.equal(n.dims, 768);
      assert.ok(Math.abs(n.norm - 1) < 1e-5, `a stored vector has norm ${n.norm}`);
    }
    // Gemini counts no tokens for embeddings: the ledger has embedsync's estimate of the texts sent.
    const { rows: paid } = await h.db.pool.query<{ tokens: string; provider: string }>(
      `select sum(tokens)::text as tokens, min(provider) as provider
         from embedsync.token_ledger where pipeline = 'gm'`,
    );
    const estimate = (calls[0]?.inputs ?? []).reduce(
      (sum, t) => sum + Math.ceil(Array.from(t).length / 3),
      0,
    );
    assert.deepEqual(paid[0], { tokens: String(estimate), provider: 'gemini' });
  });

  it('search embeds its text as RETRIEVAL_QUERY and finds the row', async () => {
    const pk = await insert('gm', 'Kettle', 'Stovetop kettle for camping');
    await waitFor('the kettle', async () => (await chunksOf(h, 'gm', pk)).length === 1);
    h.mock.reset();
    const providers = createProviders([], readProviderEnv({}));
    const [hit] = await search(h.db.pool, providers, 'gm', 'Stovetop kettle for camping', {
      limit: 1,
    });
    assert.equal(hit?.pk, pk);
    assert.equal(h.mock.requests.length, 1);
    assert.equal(h.mock.requests[0]?.params.taskType, 'RETRIEVAL_QUERY');
  });

  it('a 429 is retried after the delay in its RetryInfo', async () => {
    h.mock.inject({ kind: 'rate-limit', retryAfterMs: 5000 });
    const pk = await insert('gm', 'Headlamp', 'Rechargeable headlamp');
    // The server schedules the next attempt: its time, less the failed attempt's end, is the delay
    // the activity asked for (the hint plus at most a fifth).
    const pending = await waitFor('the rate-limited attempt', async () => {
      for (const id of await workflowIds(h, 'Running')) {
        if (!id.startsWith('sync:gm:')) continue;
        const { raw } = await h.client.workflow.getHandle(id).describe();
        const found = (raw.pendingActivities ?? []).find(
          (p) => p.lastFailure?.applicationFailureInfo?.type === 'RateLimitedError',
        );
        if (found) return found;
      }
      return false;
    });
    assert.match(pending.lastFailure?.message ?? '', /429 RESOURCE_EXHAUSTED/);
    const delay = ms(pending.nextAttemptScheduleTime) - ms(pending.lastAttemptCompleteTime);
    assert.ok(delay >= 5000 && delay <= 6000, `the retry was scheduled ${delay} ms later`);
    await waitFor('the vectors', async () => (await chunksOf(h, 'gm', pk)).length === 1, 30_000);
    assert.deepEqual(
      requestsWith('Headlamp').map((r) => r.status),
      [429, 200],
    );
  });

  it('the per-minute limit a 429 names is learned, and outlives the successes that name none', async () => {
    // The mock's own budget is far from spent: the injected 429 names the limit all the same.
    // Half the declared rate, so the pacing it brings costs this file nothing.
    h.mock.options.requestsPerMinute = 30_000;
    h.mock.inject({ kind: 'rate-limit', retryAfterMs: 500 });
    const first = await insert('gm', 'Compass', 'Baseplate compass');
    await waitFor('the compass', async () => (await chunksOf(h, 'gm', first)).length === 1, 30_000);
    const second = await insert('gm', 'Map', 'Topographic map');
    await waitFor('the map', async () => (await chunksOf(h, 'gm', second)).length === 1);
    assert.deepEqual(
      h.mock.requests.map((r) => r.status),
      [429, 200, 200],
    );
    const { rows } = await h.db.pool.query<{ rpm: number | null; limited: string }>(
      `select requests_per_minute as rpm, rate_limited::text as limited
         from embedsync.rate_observations where provider = 'gemini' and model = 'gemini-embedding-001'`,
    );
    assert.equal(rows[0]?.rpm, 30_000);
    assert.ok(Number(rows[0]?.limited) >= 1);
  });

  it('a daily quota is not retried, and the change is kept as a dead letter', async () => {
    h.mock.inject({ kind: 'quota' }, Infinity);
    const pk = await insert('gm_quota', 'Lantern', 'Gas lantern');
    const [id] = await waitFor('the failed sync', async () => {
      const ids = await failedSyncs('gm_quota');
      return ids.length > 0 ? ids : false;
    });
    const failure = await activityFailure(h, id ?? '');
    assert.equal(failure?.type, 'QuotaExhaustedError');
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /PerDay/);
    const kept = await waitFor('the key among the dead letters', async () => {
      const { rows } = await h.db.pool.query<{ error: string }>(
        `select error from embedsync.dead_letters where pipeline = 'gm_quota' and pk = $1`,
        [pk],
      );
      return rows[0]?.error;
    });
    assert.match(kept, /quota/i);
    // The workflow has failed for good: the one request is all there will be.
    assert.equal(requestsWith('Lantern').length, 1);
  });

  it('a refused input is isolated: its row is a dead letter, its batch-mates are written', async () => {
    h.mock.options.poisonMarker = POISON;
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into gm (id, title, body, category)
       select g, 'Item ' || g, case when g = 202 then 'Bad ${POISON}' else 'Good ' || g end, 'test'
         from generate_series(200, 204) g
       returning id::text`,
    );
    const good = rows.map((r) => r.id).filter((id) => id !== '202');
    const letter = await waitFor('the dead letter', async () => {
      const { rows: letters } = await h.db.pool.query<{ pk: string; error: string }>(
        `select pk, error from embedsync.dead_letters where pipeline = 'gm' and pk = '202'`,
      );
      return letters[0] ?? false;
    });
    assert.match(letter.error, /400 INVALID_ARGUMENT/);
    await waitFor('the good rows', async () =>
      (await Promise.all(good.map((id) => chunksOf(h, 'gm', id)))).every((c) => c.length === 1),
    );
    assert.equal((await chunksOf(h, 'gm', '202')).length, 0);
  });

  it('the API key appears in no workflow history, log line, console line or the catalog', async () => {
    await h.db.pool.query(
      `insert into gm_wrong_key (id, title, body) values (1, 'Tent', 'Two-person tent')`,
    );
    const [failed] = await waitFor('the wrong key to fail its workflow', async () => {
      const ids = await failedSyncs('gm_wrong_key');
      return ids.length > 0 ? ids : false;
    });
    // The mock quoted the wrong key in its error details; what reached Temporal is the message.
    const failure = await activityFailure(h, failed ?? '');
    assert.equal(failure?.type, 'ProviderAuthError');
    assert.match(failure.message, /API key not valid/);

    const { histories, places } = await secretPlaces(h, consoleLines);
    assert.ok(h.logLines.length > 0, 'nothing was logged: the scan would prove nothing');
    assert.ok(
      histories.some((t) => t.includes('API key not valid')),
      'the refusal is in no history: the scan would prove nothing',
    );
    for (const [place, text] of places)
      for (const secret of [GOOD_KEY, WRONG_KEY])
        assert.ok(!text.includes(secret), `a key appears in the ${place}`);
  });
});
