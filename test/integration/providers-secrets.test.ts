// API keys never reach workflow histories, logs or the catalog: a sync through the OpenAI and
// Bedrock clients with recognisable keys, a rejected key that a careless server echoes back whole,
// and a scan of every history, log line and console line afterwards.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../helpers/wait.js';
import {
  activityFailure,
  chunksOf,
  itemsPipeline,
  setEnv,
  startProviderHarness,
  workflowIds,
  workflowStates,
  captureConsole,
  secretPlaces,
  type ProviderHarness,
} from './providers-helpers.js';

const tag = randomBytes(6).toString('hex');
const GOOD_KEY = `sk-embedsync-good-${tag}`;
const WRONG_KEY = `sk-embedsync-wrong-${tag}`;
const AWS_SECRET = `embedsync/aws/secret/${tag}`;
const SECRETS = [GOOD_KEY, WRONG_KEY, AWS_SECRET];

setEnv({
  EMBEDSYNC_TEST_GOOD_KEY: GOOD_KEY,
  EMBEDSYNC_TEST_WRONG_KEY: WRONG_KEY,
  AWS_ACCESS_KEY_ID: 'AKIAMOCKSECRETSTEST0',
  AWS_SECRET_ACCESS_KEY: AWS_SECRET,
});

// Whatever the SDKs print on their own goes to the console: captured for the secrets scan.
const consoleLines = captureConsole();

let h: ProviderHarness;

describe('secrets', () => {
  before(async () => {
    h = await startProviderHarness('secrets', {
      pipelines: (mockUrl) => [
        itemsPipeline('keyed', {
          provider: 'openai',
          model: 'text-embedding-3-small',
          dimensions: 64,
          baseURL: `${mockUrl}/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_GOOD_KEY',
        }),
        itemsPipeline('wrong_key', {
          provider: 'openai',
          model: 'text-embedding-3-small',
          dimensions: 64,
          baseURL: `${mockUrl}/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_WRONG_KEY',
        }),
        itemsPipeline('titan', {
          provider: 'bedrock',
          model: 'amazon.titan-embed-text-v2:0',
          dimensions: 256,
        }),
      ],
      mock: { apiKey: GOOD_KEY, echoKeyInErrors: true },
    });
  });
  after(async () => h.stop());

  it('API keys appear in no workflow history, log line or console line', async () => {
    h.mock.inject({ kind: 'rate-limit', retryAfterMs: 500 });
    // Texts of each table's own: the keyed pipeline has the same model on the same server, and a
    // text it embedded first would be reused by the wrong key's pipeline without any request
    // (decision 16), which then has nothing to fail on.
    for (const table of ['keyed', 'wrong_key', 'titan']) {
      await h.db.pool.query(
        `insert into ${table} (id, title, body) values (1, 'Tent', $1), (2, 'Stove', $2)`,
        [`Two-person tent (${table})`, `Camping stove (${table})`],
      );
    }
    // The deadlines bound a hang: on a loaded machine the wrong key's workflow once took over 20 s
    // to fail, behind the injected 429's hold and its retries.
    const hang = 60_000;
    await waitFor(
      'the keyed rows',
      async () => (await chunksOf(h, 'keyed', '2')).length === 1,
      hang,
    );
    await waitFor(
      'the titan rows',
      async () => (await chunksOf(h, 'titan', '2')).length === 1,
      hang,
    );
    const [failed] = await waitFor(
      'the wrong key to fail its workflow',
      async () => {
        const ids = await workflowIds(h, 'Failed');
        return ids.length > 0 ? ids : false;
      },
      hang,
    ).catch(async (err: unknown) => {
      const logTail = h.logLines.slice(-20).join('\n');
      throw new Error(
        `${String(err)}\nworkflows:\n${await workflowStates(h)}\nlast log lines:\n${logTail}`,
      );
    });
    // The server did echo the wrong key; what reached Temporal says it was redacted.
    assert.ok(h.mock.requests.some((r) => r.status === 401));
    const failure = await activityFailure(h, failed ?? '');
    assert.equal(failure?.type, 'ProviderAuthError');
    assert.match(failure.message, /Incorrect API key provided: \[redacted\]/);

    const { ids, places } = await secretPlaces(h, consoleLines);
    assert.ok(ids.length >= 3, `expected the workflows of three pipelines, found ${ids.length}`);
    assert.ok(h.logLines.length > 0, 'nothing was logged: the scan would prove nothing');
    for (const [place, text] of places) {
      for (const secret of SECRETS)
        assert.ok(!text.includes(secret), `a secret appears in the ${place}`);
    }
  });
});
