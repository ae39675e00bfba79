// Voyage AI end to end: real sync workflows whose embed activities call Voyage through its official
// SDK, against the mock provider's Voyage protocol. Rows reach the vector table with documents sent
// as documents and searches as queries; a 429 is retried, exhausted credits are not, a refused input
// is isolated to its row, the token ledger holds Voyage's own count, and no key leaks anywhere.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { countTokens } from '../../src/chunking/tokens.js';
import { readProviderEnv } from '../../src/config/env.js';
import { createProviders } from '../../src/providers/index.js';
import { search } from '../../src/search/search.js';
import { seriesValue } from '../helpers/metrics.js';
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
const GOOD_KEY = `pa-embedsync-good-${tag}`;
const WRONG_KEY = `pa-embedsync-wrong-${tag}`;
const POISON = '\u2620';

setEnv({ EMBEDSYNC_TEST_VOYAGE_KEY: GOOD_KEY, EMBEDSYNC_TEST_VOYAGE_WRONG_KEY: WRONG_KEY });

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

const deadLetter = async (pipeline: string, pk: string): Promise<string | undefined> => {
  const { rows } = await h.db.pool.query<{ error: string }>(
    'select error from embedsync.dead_letters where pipeline = $1 and pk = $2',
    [pipeline, pk],
  );
  return rows[0]?.error;
};

const voyRequests = (outcome: string) =>
  seriesValue(h.metrics, 'embedsync_provider_requests_total', {
    pipeline: 'voy',
    provider: 'voyage',
    outcome,
  });

describe('Voyage AI through its SDK, end to end', () => {
  before(async () => {
    h = await startProviderHarness('voyage', {
      pipelines: (mockUrl) => [
        itemsPipeline('voy', {
          provider: 'voyage',
          model: 'voyage-3.5',
          dimensions: 512,
          baseURL: `${mockUrl}/voyage/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_VOYAGE_KEY',
          // Paced, as a Voyage pipeline should be: Voyage sends no rate-limit headers.
          requestsPerMinute: 6000,
          tokensPerMinute: 1_000_000,
        }),
        itemsPipeline('voy_wrong_key', {
          provider: 'voyage',
          model: 'voyage-3.5-lite',
          dimensions: 1024,
          baseURL: `${mockUrl}/voyage/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_VOYAGE_WRONG_KEY',
        }),
      ],
      mock: { apiKey: GOOD_KEY, echoKeyInErrors: true, poisonMarker: POISON },
    });
  });
  after(async () => h.stop());
  beforeEach(() => h.mock.reset());

  it('syncs rows into the vector table as documents, never truncated; the ledger and the rate observations hold Voyage’s count', async () => {
    const a = await insert('voy', 'Alpine tent', 'Two-person tent for storms');
    const b = await insert('voy', 'Kettle', 'Stovetop kettle');
    await waitFor(
      'both rows',
      async () =>
        (await chunksOf(h, 'voy', a)).length === 1 && (await chunksOf(h, 'voy', b)).length === 1,
    );
    assert.deepEqual(await chunksOf(h, 'voy', a), [
      { chunk: 'Title: Alpine tent\nTwo-person tent for storms', dims: 512 },
    ]);
    const sent = h.mock.requests.filter((r) => r.status === 200);
    assert.ok(sent.length >= 1);
    for (const r of sent) {
      assert.equal(r.api, 'voyage');
      assert.deepEqual(r.params, {
        model: 'voyage-3.5',
        input_type: 'document',
        truncation: false,
        output_dtype: 'float',
        output_dimension: 512,
      });
    }
    // usage.total_tokens (the mock counts cl100k) is what the ledger holds.
    const counted = sent.flatMap((r) => r.inputs).reduce((sum, t) => sum + countTokens(t), 0);
    const ledger = await waitFor('the ledger', async () => {
      const { rows } = await h.db.pool.query<{ tokens: string; provider: string }>(
        `select sum(tokens)::text as tokens, min(provider) as provider
           from embedsync.token_ledger where pipeline = 'voy'`,
      );
      return rows[0]?.tokens === String(counted) ? rows[0] : false;
    });
    assert.equal(ledger.provider, 'voyage');
    // What every answer teaches the token buckets: Voyage's count against embedsync's estimate (a
    // token per three characters for a model whose tokenizer is not cl100k).
    const estimated = sent
      .flatMap((r) => r.inputs)
      .reduce((sum, t) => sum + Math.ceil(Array.from(t).length / 3), 0);
    const learned = await waitFor('the rate observations', async () => {
      const { rows } = await h.db.pool.query<{ reported: number; estimated: number }>(
        `select reported_tokens as reported, estimated_tokens as estimated
           from embedsync.rate_observations where provider = 'voyage' and model = 'voyage-3.5'`,
      );
      return rows[0]?.reported === counted ? rows[0] : false;
    });
    assert.equal(learned.estimated, estimated);
  });

  it('a search embeds its text as a query and finds the row', async () => {
    const pk = await insert('voy', 'Headlamp', 'Rechargeable headlamp for night hikes');
    await waitFor('the vectors', async () => (await chunksOf(h, 'voy', pk)).length === 1);
    h.mock.reset();
    const providers = createProviders([], readProviderEnv({}));
    const hits = await search(h.db.pool, providers, 'voy', 'Rechargeable headlamp for night hikes');
    assert.equal(hits[0]?.pk, pk);
    assert.deepEqual(
      h.mock.requests.map((r) => [r.params.input_type, r.inputs]),
      [['query', ['Rechargeable headlamp for night hikes']]],
    );
  });

  it('a 429 with a retry hint is retried, one request per attempt', async () => {
    h.mock.options.retryHint = 'retry-after';
    h.mock.inject({ kind: 'rate-limit', retryAfterMs: 1000 });
    const limited = await voyRequests('rate_limited');
    const pk = await insert('voy', 'Compass', 'Baseplate compass');
    await waitFor('the vectors', async () => (await chunksOf(h, 'voy', pk)).length === 1);
    assert.deepEqual(
      requestsWith('Compass').map((r) => r.status),
      [429, 200],
    );
    assert.equal((await voyRequests('rate_limited')) - limited, 1);
  });

  it('a refused input is isolated to its row: a dead letter with Voyage’s reason, the rest written', async () => {
    // One statement: one batch, one request of eight inputs to bisect.
    const bodies = [
      'One',
      'Two',
      'Three',
      `Refused ${POISON} content`,
      'Five',
      'Six',
      'Seven',
      'Eight',
    ];
    const first = nextId;
    nextId += bodies.length;
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into voy (id, title, body) select $1::bigint + i - 1, 'Item', b
         from unnest($2::text[]) with ordinality as s(b, i) returning id::text`,
      [first, bodies],
    );
    const ids = rows.map((r) => r.id);
    const bad = ids[3] ?? '';
    const reason = await waitFor('the dead letter', () => deadLetter('voy', bad));
    assert.match(reason, /^400: Request to model 'voyage-3\.5' failed\. The example at index 0/);
    const good = ids.filter((id) => id !== bad);
    await waitFor('the good rows', async () =>
      (await Promise.all(good.map((pk) => chunksOf(h, 'voy', pk)))).every((c) => c.length === 1),
    );
    assert.equal((await chunksOf(h, 'voy', bad)).length, 0);
    const [whole] = h.mock.requests;
    assert.equal(whole?.inputs.length, 8, 'the batch was not sent as one request');
    assert.equal(whole?.status, 400);
    const accepted = h.mock.requests.filter((r) => r.status === 200).flatMap((r) => r.inputs);
    assert.equal(accepted.length, 7);
    assert.equal(new Set(accepted).size, 7, 'an input was paid for twice');
    assert.ok(h.mock.requests.length <= 1 + 2 * Math.ceil(Math.log2(8)));
  });

  it('exhausted credits are not retried: the batch fails for good and its key is kept', async () => {
    h.mock.inject({ kind: 'quota' }, Infinity);
    const failedBefore = new Set(await workflowIds(h, 'Failed'));
    try {
      const pk = await insert('voy', 'Binoculars', 'Compact binoculars');
      const [id = ''] = await waitFor('the failed workflow', async () => {
        const ids = (await workflowIds(h, 'Failed')).filter(
          (i) => !failedBefore.has(i) && i.startsWith('sync:voy:'),
        );
        return ids.length > 0 ? ids : false;
      });
      const failure = await activityFailure(h, id);
      assert.equal(failure?.type, 'QuotaExhaustedError');
      assert.equal(failure?.nonRetryable, true);
      assert.match(failure?.message ?? '', /credits/);
      // The activity was not retried: the credits were asked for once.
      assert.equal(requestsWith('Binoculars').length, 1);
      assert.match(
        (await waitFor('the dead letter', () => deadLetter('voy', pk))) ?? '',
        /credits/,
      );
    } finally {
      h.mock.reset();
    }
  });

  it('keys appear in no workflow history, log line, console line or catalog row', async () => {
    await insert('voy_wrong_key', 'Tent', 'Two-person tent');
    const [failed = ''] = await waitFor('the wrong key to fail its workflow', async () => {
      const ids = (await workflowIds(h, 'Failed')).filter((i) =>
        i.startsWith('sync:voy_wrong_key:'),
      );
      return ids.length > 0 ? ids : false;
    });
    // The server did echo the wrong key; what reached Temporal says it was redacted.
    const failure = await activityFailure(h, failed);
    assert.equal(failure?.type, 'ProviderAuthError');
    assert.match(failure.message, /401: Provided API key is invalid: \[redacted\]/);

    const { ids, places } = await secretPlaces(h, consoleLines);
    assert.ok(h.logLines.length > 0, 'nothing was logged: the scan would prove nothing');
    assert.ok(ids.length >= 5, `expected the workflows of every test, found ${ids.length}`);
    for (const [place, text] of places)
      for (const secret of [GOOD_KEY, WRONG_KEY])
        assert.ok(!text.includes(secret), `a key appears in the ${place}`);
  });
});
