// What embedsync says a walk will cost, and what it says was paid, against what the provider
// counted: the real OpenAI client and a real worker against the mock provider, whose answers carry
// usage.prompt_tokens. The mock's count is summed from the requests it answered.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startBackfill } from '../../src/backfill/start.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { countTokens } from '../../src/chunking/tokens.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import { estimateWalk, type CostEstimate, type WalkKind } from '../../src/cost/estimate.js';
import { getPipeline, instanceId, listPipelines, setSyncPaused } from '../../src/db/catalog.js';
import { createProviders } from '../../src/providers/index.js';
import { startReembed } from '../../src/reembed/start.js';
import { gatherStatus } from '../../src/status/index.js';
import { waitFor } from '../helpers/wait.js';
import {
  workflowIds,
  itemsPipeline,
  setEnv,
  startProviderHarness,
  type ProviderHarness,
} from './providers-helpers.js';

let h: ProviderHarness;
let mockUrl = '';
let nextId = 1;

setEnv({ EMBEDSYNC_TEST_OPENAI_KEY: 'sk-test-cost-0000' });

const openai = (url: string, dimensions = 256): PipelineInput['embedding'] => ({
  provider: 'openai',
  model: 'text-embedding-3-small',
  dimensions,
  baseURL: `${url}/v1`,
  apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY',
});
const pipelines = (url: string, mixedDimensions = 256): PipelineInput[] => [
  itemsPipeline('walked', openai(url)),
  itemsPipeline('twins', openai(url)),
  itemsPipeline('mixed', openai(url, mixedDimensions)),
  itemsPipeline('changes', openai(url)),
];

/** Tokens the mock charged for the requests it answered, as its usage.prompt_tokens said. */
const mockTokens = (): number =>
  h.mock.requests
    .filter((r) => r.status === 200)
    .reduce((n, r) => n + r.inputs.reduce((m, text) => m + countTokens(text), 0), 0);
const mockRequests = (): number => h.mock.requests.filter((r) => r.status === 200).length;

/** Rows of distinct text, some long enough for several chunks (the pipelines chunk at 200). */
async function insertRows(table: string, n: number, words = 12): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = nextId++;
    const body = Array.from({ length: words + (id % 7) * 40 }, (_, w) => `w${id}x${w}`).join(' ');
    await h.db.pool.query(
      `insert into ${table} (id, title, body, category) values ($1, $2, $3, 'c')`,
      [id, `Item ${id}`, body],
    );
  }
}

async function estimate(
  pipeline: string,
  kind: WalkKind,
  rateLimit?: { requestsPerMinute: number; tokensPerMinute: number },
): Promise<CostEstimate> {
  const p = await getPipeline(h.db.pool, pipeline);
  const openaiProvider = createProviders().get('openai');
  assert.ok(openaiProvider);
  // The environment's limits (EMBEDSYNC_OPENAI_*_PER_MINUTE), as a worker's provider has them.
  const provider = {
    name: openaiProvider.name,
    maxInputsPerRequest: openaiProvider.maxInputsPerRequest,
    rateLimit: rateLimit ?? openaiProvider.rateLimit,
  };
  const configs = (await listPipelines(h.db.pool)).flatMap((x) =>
    x.pendingConfig ? [x.config, x.pendingConfig] : [x.config],
  );
  return estimateWalk(h.db.pool, p, { kind, batchSize: 500, provider, providerConfigs: configs });
}

async function backfill(pipeline: string): Promise<void> {
  const p = await getPipeline(h.db.pool, pipeline);
  const options = { taskQueue: h.taskQueue, instanceId: await instanceId(h.db.pool), rows: 0 };
  await (await startBackfill(h.client, p, options)).result();
}

/** The ledger's tokens for a pipeline, by mode. */
async function ledger(pipeline: string): Promise<Record<string, number>> {
  const { rows } = await h.db.pool.query<{ mode: string; tokens: number }>(
    `select mode, sum(tokens)::bigint as tokens from embedsync.token_ledger
      where pipeline = $1 group by mode`,
    [pipeline],
  );
  return Object.fromEntries(rows.map((r) => [r.mode, r.tokens]));
}

async function vectorsOf(pipeline: string): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(
    `select count(distinct pk)::int as n from ${pipeline}_embeddings`,
  );
  return rows[0]?.n ?? 0;
}

/** The pipeline's changes are all written: none waits in the outbox, no sync workflow runs. */
const settled = async (pipeline: string): Promise<boolean> =>
  (await h.db.pool.query('select 1 from embedsync.outbox where pipeline = $1', [pipeline]))
    .rowCount === 0 &&
  (await workflowIds(h, 'Running')).every((id) => !id.startsWith(`sync:${pipeline}:`));

describe('cost: the dry run, the token ledger and status against what the provider counted', () => {
  before(async () => {
    h = await startProviderHarness('cost', {
      pipelines: (url) => {
        mockUrl = url;
        return pipelines(url);
      },
    });
  });
  after(async () => h.stop());
  beforeEach(() => h.mock.reset());

  it("a backfill's dry run counts the tokens the provider then counts, skipping rows already in sync", async () => {
    // Sync paused: only the walks meet these rows.
    await setSyncPaused(h.db.pool, 'walked', true);
    await insertRows('walked', 40);
    await backfill('walked');
    await insertRows('walked', 230);
    await h.db.pool.query(
      `update walked set body = body || ' changed' where id in (select id from walked order by id limit 10)`,
    );
    h.mock.reset();
    const before = await ledger('walked');

    const dry = await estimate('walked', 'backfill');
    assert.equal(h.mock.requests.length, 0, 'the dry run sent nothing');
    assert.deepEqual(
      { rows: dry.rows, rowsToEmbed: dry.rowsToEmbed, rowsSkipped: dry.rowsSkipped },
      { rows: 270, rowsToEmbed: 240, rowsSkipped: 30 },
    );
    assert.ok(dry.chunks > dry.rowsToEmbed, 'some rows are several chunks');
    assert.equal(dry.distinctTexts, dry.chunks);
    assert.equal(dry.tokensEstimated, false);
    assert.equal(dry.minutes, undefined, 'no limit declared');
    assert.equal(dry.cost.online, (dry.tokens / 1e6) * 0.02);
    assert.equal(dry.cost.batch, (dry.tokens / 1e6) * 0.01);

    await backfill('walked');
    const sent = h.mock.requests.filter((r) => r.status === 200);
    assert.equal(mockTokens(), dry.tokens, "the dry run's tokens are the provider's");
    assert.equal(mockRequests(), dry.requests);
    // The changed rows' unchanged leading chunks are on record from the first walk: reused.
    assert.ok(dry.textsOnRecord > 0, 'texts on record from the first walk');
    assert.equal(
      sent.reduce((n, r) => n + r.inputs.length, 0),
      dry.chunks - dry.textsOnRecord,
    );
    const paid = await ledger('walked');
    assert.equal(paid.backfill ?? 0, (before.backfill ?? 0) + dry.tokens);
    await setSyncPaused(h.db.pool, 'walked', false);
  });

  it('a dry run counts identical texts once', async () => {
    await setSyncPaused(h.db.pool, 'twins', true);
    const insert = (id: number, body: string) =>
      h.db.pool.query(
        `insert into twins (id, title, body, category) values ($1, 'Same', $2, 'c')`,
        [id, body],
      );
    await insert(nextId++, 'shared boilerplate text');
    await insert(nextId++, 'shared boilerplate text');
    await insert(nextId++, 'a text of its own');
    const dry = await estimate('twins', 'backfill');
    assert.deepEqual(
      { chunks: dry.chunks, distinctTexts: dry.distinctTexts },
      { chunks: 3, distinctTexts: 2 },
    );
    const shared = countTokens('Title: Same\nshared boilerplate text');
    const own = countTokens('Title: Same\na text of its own');
    assert.equal(dry.tokens, shared + own);
    assert.equal(dry.chunkTokens, 2 * shared + own);
    assert.equal(h.mock.requests.length, 0);

    // Under declared limits: one request (both texts fit), so the tokens budget decides.
    const limited = await estimate('twins', 'backfill', {
      requestsPerMinute: 60,
      tokensPerMinute: 600,
    });
    assert.deepEqual(limited.limits, { requestsPerMinute: 60, tokensPerMinute: 600 });
    assert.equal(limited.requests, 1);
    assert.equal(limited.minutes, (shared + own) / 600);
  });

  it('the ledger equals the mock’s count after change sync, a backfill and a re-embed', async () => {
    // Change sync.
    await insertRows('mixed', 30);
    await waitFor('the changes to sync', async () => (await vectorsOf('mixed')) === 30, 60_000);
    // A backfill of rows sync did not see.
    await setSyncPaused(h.db.pool, 'mixed', true);
    await insertRows('mixed', 50);
    await backfill('mixed');
    await setSyncPaused(h.db.pool, 'mixed', false);
    await waitFor('the outbox to drain', () => settled('mixed'), 60_000);
    // More change sync, then a re-embed at other dimensions, its dry run first.
    await h.db.pool.query(`update mixed set body = body || ' again' where id % 3 = 0`);
    await waitFor('the updates to sync', () => settled('mixed'), 60_000);
    const [applied] = await applyPipelines(
      h.db.pool,
      parsePipelines({ pipelines: pipelines(mockUrl, 128).filter((p) => p.name === 'mixed') }),
    );
    assert.equal(applied?.outcome, 'reembed pending');
    const beforeReembed = mockTokens();
    const dry = await estimate('mixed', 'reembed');
    assert.equal(dry.rowsToEmbed, 80);
    const p = await getPipeline(h.db.pool, 'mixed');
    const options = { taskQueue: h.taskQueue, instanceId: await instanceId(h.db.pool), rows: 80 };
    await (await startReembed(h.client, p, options)).result();
    assert.equal(mockTokens() - beforeReembed, dry.tokens, "the re-embed's dry run");

    const paid = await ledger('mixed');
    assert.ok((paid.sync ?? 0) > 0 && (paid.backfill ?? 0) > 0 && (paid.reembed ?? 0) > 0);
    assert.equal(
      (paid.sync ?? 0) + (paid.backfill ?? 0) + (paid.reembed ?? 0),
      mockTokens(),
      'every token the provider counted is in the ledger',
    );
    assert.equal(paid.reembed, dry.tokens);
  });

  it('status shows the tokens paid today and their cost, and rows synced by change sync alone', async () => {
    await insertRows('changes', 25);
    await waitFor('the changes to sync', async () => (await vectorsOf('changes')) === 25, 60_000);
    await waitFor('the outbox to drain', () => settled('changes'), 60_000);
    const report = await gatherStatus(
      h.db.pool,
      { address: '', namespace: '', base: '', client: undefined, error: 'not asked' },
      'changes',
    );
    const s = report.pipelines[0];
    assert.ok(s);
    assert.equal(s.totalRows, null, 'no walk has run');
    assert.deepEqual(s.synced, { rows: 25, of: 25 });
    const tokens = mockTokens();
    assert.ok(tokens > 0);
    assert.deepEqual(
      { tokens: s.spend.today.tokens, modes: Object.keys(s.spend.today.byMode) },
      { tokens, modes: ['sync'] },
    );
    assert.equal(s.spend.today.cost, (tokens / 1e6) * 0.02);
    assert.equal(s.spend.total.tokens, tokens);
    assert.equal(s.spend.today.unpricedTokens, 0);

    // A change waiting, and a dead letter, take their rows out of sync until they are handled.
    await setSyncPaused(h.db.pool, 'changes', true);
    await h.db.pool.query(
      `update changes set body = 'moved' where id = (select min(id) from changes)`,
    );
    await h.db.pool.query(
      `insert into embedsync.dead_letters (pipeline, pk, generation, content_hash, error)
       select 'changes', max(id)::text, 1, 'x', 'refused' from changes`,
    );
    const later = await gatherStatus(
      h.db.pool,
      { address: '', namespace: '', base: '', client: undefined, error: 'not asked' },
      'changes',
    );
    assert.deepEqual(later.pipelines[0]?.synced, { rows: 23, of: 25 });
    await h.db.pool.query(`delete from embedsync.dead_letters where pipeline = 'changes'`);
    await setSyncPaused(h.db.pool, 'changes', false);
  });
});
