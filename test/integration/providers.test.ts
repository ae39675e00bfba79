// The real OpenAI and Bedrock SDK clients, driven by real sync workflows against the mock provider:
// what goes on the wire, how failures are retried or not, and what reaches the vector tables.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WorkflowFailedError, type ApplicationFailure } from '@temporalio/client';
import { startBackfill } from '../../src/backfill/start.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { countTokens } from '../../src/chunking/tokens.js';
import { ConfigError, parsePipelines } from '../../src/config/pipeline.js';
import { getPipeline, instanceId, setSyncPaused } from '../../src/db/catalog.js';
import { readPipelineFacts } from '../../src/status/index.js';
import { seriesValue } from '../helpers/metrics.js';
import { waitFor } from '../helpers/wait.js';
import {
  activityFailure,
  chunksOf,
  itemsPipeline,
  setEnv,
  startProviderHarness,
  workflowIds,
  type ProviderHarness,
} from './providers-helpers.js';

let h: ProviderHarness;
let nextId = 1;

setEnv({
  EMBEDSYNC_TEST_OPENAI_KEY: 'sk-test-providers-0000',
  AWS_ACCESS_KEY_ID: 'AKIAMOCKPROVIDERTEST',
  AWS_SECRET_ACCESS_KEY: 'mock-secret-providers',
});

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

type Outcomes = Record<'ok' | 'rate_limited' | 'retryable' | 'refused', number>;

/** The worker's embedsync_provider_requests_total of the oa pipeline, by outcome. */
async function oaRequests(): Promise<Outcomes> {
  const count = (outcome: string) =>
    seriesValue(h.metrics, 'embedsync_provider_requests_total', {
      pipeline: 'oa',
      provider: 'openai',
      outcome,
    });
  return {
    ok: await count('ok'),
    rate_limited: await count('rate_limited'),
    retryable: await count('retryable'),
    refused: await count('refused'),
  };
}

async function assertCounted(before: Outcomes, grown: Partial<Outcomes>): Promise<void> {
  const after = await oaRequests();
  const delta = Object.fromEntries(
    Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]),
  );
  assert.deepEqual(delta, { ok: 0, rate_limited: 0, retryable: 0, refused: 0, ...grown });
}

/** The failure of the first workflow that failed, down to the activity's ApplicationFailure. */
async function failedActivity(): Promise<ApplicationFailure> {
  const [id] = await waitFor('a failed workflow', async () => {
    const ids = await workflowIds(h, 'Failed');
    return ids.length > 0 ? ids : false;
  });
  const failure = await activityFailure(h, id ?? '');
  assert.ok(failure, 'the workflow did not fail in an activity');
  return failure;
}

describe('embedding providers through their SDKs', () => {
  before(async () => {
    h = await startProviderHarness('providers', {
      pipelines: (mockUrl) => [
        itemsPipeline('oa', {
          provider: 'openai',
          model: 'text-embedding-3-small',
          dimensions: 256,
          baseURL: `${mockUrl}/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY',
        }),
        itemsPipeline('titan', {
          provider: 'bedrock',
          model: 'amazon.titan-embed-text-v2:0',
          dimensions: 256,
        }),
        itemsPipeline(
          'cohere',
          { provider: 'bedrock', model: 'cohere.embed-english-v3', dimensions: 1024 },
          { chunking: { size: 2000, overlap: 100 } },
        ),
      ],
      mock: {},
    });
  });
  after(async () => h.stop());
  beforeEach(() => h.mock.reset());

  it('an OpenAI pipeline asks for base64 when its config names no format, and for dimensions where the model can reduce', async () => {
    const pk = await insert('oa', 'Alpine tent', 'Two-person tent for storms');
    const chunks = await waitFor('the vectors', async () =>
      (await chunksOf(h, 'oa', pk)).length > 0 ? chunksOf(h, 'oa', pk) : false,
    );
    assert.deepEqual(chunks, [
      { chunk: 'Title: Alpine tent\nTwo-person tent for storms', dims: 256 },
    ]);
    const [request] = requestsWith('Alpine tent');
    assert.equal(request?.status, 200);
    assert.deepEqual(request?.params, { encoding_format: 'base64', dimensions: 256 });
  });

  it('a Titan v2 pipeline calls InvokeModel once per text, signed, with its dimensions', async () => {
    const a = await insert('titan', 'Kettle', 'Stovetop kettle');
    const b = await insert('titan', 'Grinder', 'Burr coffee grinder');
    await waitFor(
      'both rows',
      async () =>
        (await chunksOf(h, 'titan', a)).length === 1 &&
        (await chunksOf(h, 'titan', b)).length === 1,
    );
    const calls = h.mock.requests.filter((r) => r.api === 'bedrock' && r.status === 200);
    assert.equal(calls.length, 2);
    for (const call of calls) {
      assert.equal(call.model, 'amazon.titan-embed-text-v2:0');
      assert.equal(call.signed, true);
      assert.equal(call.region, 'us-east-1');
      assert.equal(call.path, '/model/amazon.titan-embed-text-v2%3A0/invoke');
      assert.deepEqual(call.params, { dimensions: 256, normalize: true });
    }
    assert.equal((await chunksOf(h, 'titan', a))[0]?.dims, 256);
  });

  it('a Cohere v3 pipeline embeds a batch in one call as search_document, never truncating', async () => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into cohere (id, title, body) select g, 'Item ' || g, 'Description ' || g from generate_series(1000, 1004) g returning id::text`,
    );
    await waitFor('five rows', async () =>
      (await Promise.all(rows.map((r) => chunksOf(h, 'cohere', r.id)))).every(
        (c) => c.length === 1,
      ),
    );
    const calls = h.mock.requests.filter((r) => r.api === 'bedrock');
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.inputs.length, 5);
    assert.deepEqual(calls[0]?.params, { input_type: 'search_document', truncate: 'NONE' });
  });

  it('a 429 with retry-after is honoured: the next attempt waits that long', async () => {
    h.mock.options.retryHint = 'retry-after';
    h.mock.inject({ kind: 'rate-limit', retryAfterMs: 2000 });
    const counted = await oaRequests();
    const pk = await insert('oa', 'Headlamp', 'Rechargeable headlamp');
    await waitFor('the vectors', async () => (await chunksOf(h, 'oa', pk)).length === 1);
    await assertCounted(counted, { rate_limited: 1, ok: 1 });
    const [first, second, ...rest] = requestsWith('Headlamp');
    assert.equal(first?.status, 429);
    assert.equal(second?.status, 200);
    assert.equal(rest.length, 0);
    const waited = (second?.at ?? 0) - (first?.at ?? 0);
    // A slow machine only delays the retry: the lower bound is what the hint promises. (A hint
    // misread as far longer would leave the row unembedded past waitFor's limit above.)
    assert.ok(waited >= 2000, `retried after ${waited} ms, before the 2 s the server asked for`);
  });

  it('a server error is retried, each attempt one request (the SDK does not retry on its own)', async () => {
    h.mock.inject({ kind: 'server-error', status: 500 });
    const counted = await oaRequests();
    const pk = await insert('oa', 'Stove', 'Camping stove');
    await waitFor('the vectors', async () => (await chunksOf(h, 'oa', pk)).length === 1);
    assert.deepEqual(
      requestsWith('Stove').map((r) => r.status),
      [500, 200],
    );
    await assertCounted(counted, { retryable: 1, ok: 1 });
  });

  it('a provider that keeps failing shows in the status until it answers again', async () => {
    h.mock.inject({ kind: 'server-error', status: 503 }, 3);
    const pk = await insert('oa', 'Tarp', 'Ultralight tarp');
    const failing = await waitFor(
      'three failures in a row',
      async () => {
        const [facts] = await readPipelineFacts(h.db.pool, 'oa');
        return facts && facts.providerFailuresInARow >= 3 ? facts : false;
      },
      20_000,
    );
    assert.match(failing.providerLastError ?? '', /ProviderUnavailableError: .*503/);
    await waitFor('the vectors', async () => (await chunksOf(h, 'oa', pk)).length === 1, 30_000);
    const [recovered] = await readPipelineFacts(h.db.pool, 'oa');
    assert.equal(recovered?.providerFailuresInARow, 0);
    assert.ok(
      (recovered?.providerLastSuccessAt?.getTime() ?? 0) >=
        (recovered?.providerLastErrorAt?.getTime() ?? Infinity),
    );
  });

  it('an exhausted quota is not retried, and the change is kept as a dead letter', async () => {
    h.mock.inject({ kind: 'quota' }, Infinity);
    const counted = await oaRequests();
    const pk = await insert('oa', 'Lantern', 'Gas lantern');
    const failure = await failedActivity();
    await assertCounted(counted, { refused: 1 });
    assert.equal(failure.type, 'QuotaExhaustedError');
    assert.equal(failure.nonRetryable, true);
    const kept = await waitFor('the key among the dead letters', async () => {
      const { rows } = await h.db.pool.query<{ error: string }>(
        `select error from embedsync.dead_letters where pipeline = 'oa' and pk = $1`,
        [pk],
      );
      return rows[0]?.error;
    });
    assert.match(kept, /quota/i);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(requestsWith('Lantern').length, 1);
  });

  it('vectors of the wrong dimensions fail the batch without retrying', async () => {
    const failedBefore = new Set(await workflowIds(h, 'Failed'));
    h.mock.inject({ kind: 'wrong-dimensions' });
    await insert('oa', 'Compass', 'Baseplate compass');
    const [id] = await waitFor('another failed workflow', async () => {
      const ids = (await workflowIds(h, 'Failed')).filter((i) => !failedBefore.has(i));
      return ids.length > 0 ? ids : false;
    });
    const failure = await activityFailure(h, id ?? '');
    assert.equal(failure?.type, 'DimensionMismatchError');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(requestsWith('Compass').length, 1);
  });

  it('long text is chunked by tokens: every chunk within the size, nothing cut off', async () => {
    const words = Array.from({ length: 3000 }, (_, i) => `word${i}`);
    const pk = await insert('oa', 'Manual', words.join(' '));
    const chunks = await waitFor('the chunks', async () => {
      const c = await chunksOf(h, 'oa', pk);
      return c.length > 1 ? c : false;
    });
    assert.ok(
      chunks.every((c) => countTokens(c.chunk) <= 200),
      'a chunk is longer than 200 tokens',
    );
    assert.ok(
      chunks.length >= 40,
      `3,000 words of ~3 tokens each should make 40+ chunks of 200 tokens, got ${chunks.length}`,
    );
    const seen = new Set(chunks.flatMap((c) => c.chunk.split(/\s+/)));
    assert.ok(
      words.every((w) => seen.has(w)),
      'a word was lost',
    );
    const sent = requestsWith('word0 ').flatMap((r) => r.inputs);
    assert.ok(sent.every((t) => countTokens(t) <= 200));
  });

  it('a model measured in characters is chunked by characters', async () => {
    const body = 'Long description sentence. '.repeat(200);
    const pk = await insert('cohere', 'Long', body);
    const chunks = await waitFor('the chunks', async () => {
      const c = await chunksOf(h, 'cohere', pk);
      return c.length > 1 ? c : false;
    });
    assert.ok(chunks.every((c) => Array.from(c.chunk).length <= 2000));
  });

  it('a pipeline whose dimensions the model cannot produce is refused when applied', async () => {
    const refuse = async (
      embedding: Parameters<typeof itemsPipeline>[1],
      field: string,
      chunking?: { size: number; overlap: number },
    ) => {
      const config = parsePipelines({
        pipelines: [
          itemsPipeline(
            'oa',
            embedding,
            chunking ? { name: 'refused', chunking } : { name: 'refused' },
          ),
        ],
      });
      await assert.rejects(
        applyPipelines(h.db.pool, config),
        (err: unknown) => err instanceof ConfigError && err.field === `pipelines[0].${field}`,
      );
    };
    await refuse(
      { provider: 'openai', model: 'text-embedding-ada-002', dimensions: 512 },
      'embedding.dimensions',
    );
    await refuse(
      { provider: 'openai', model: 'text-embedding-3-small', dimensions: 1600 },
      'embedding.dimensions',
    );
    await refuse(
      { provider: 'bedrock', model: 'amazon.titan-embed-text-v2:0', dimensions: 768 },
      'embedding.dimensions',
    );
    await refuse(
      { provider: 'bedrock', model: 'cohere.embed-english-v3', dimensions: 512 },
      'embedding.dimensions',
    );
    await refuse(
      { provider: 'bedrock', model: 'cohere.embed-english-v3', dimensions: 1024 },
      'chunking.size',
      { size: 3000, overlap: 100 },
    );
    await refuse(
      { provider: 'openai', model: 'nomic-embed-text', dimensions: 768 },
      'embedding.model',
    );
    const { rows } = await h.db.pool.query(
      `select 1 from embedsync.pipelines where name = 'refused'`,
    );
    assert.equal(rows.length, 0);
  });

  it('a backfill whose batch fails for good ends: the pipeline is active again, the failure on record', async () => {
    h.mock.inject({ kind: 'quota' }, Infinity);
    // Paused, so that only the backfill meets the row.
    await setSyncPaused(h.db.pool, 'oa', true);
    try {
      await insert('oa', 'Stove', 'Folding camp stove');
      const handle = await startBackfill(h.client, await getPipeline(h.db.pool, 'oa'), {
        taskQueue: h.taskQueue,
        instanceId: await instanceId(h.db.pool),
        rows: 0,
      });
      await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError);
      const { rows } = await h.db.pool.query<{ state: string }>(
        `select state from embedsync.pipelines where name = 'oa'`,
      );
      assert.equal(rows[0]?.state, 'active');
      // What failed, and where, stays on record for status until the next backfill ends.
      const failures = await h.db.pool.query<{ stage: string; error_class: string }>(
        `select stage, error_class from embedsync.batch_failures
          where pipeline = 'oa' and starts_with(batch_id, 'backfill:oa:')`,
      );
      // A walk's batch is one activity: read, chunk, embed and write.
      assert.deepEqual(failures.rows, [
        { stage: 'walk batch', error_class: 'QuotaExhaustedError' },
      ]);
    } finally {
      await setSyncPaused(h.db.pool, 'oa', false);
    }
  });
});
