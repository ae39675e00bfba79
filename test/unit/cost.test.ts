// The arithmetic of cost: a walk's requests and time under the declared limits, the ledger priced
// per model and mode, and the dry run as a user reads it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeEstimate } from '../../src/cli/dry-run.js';
import { money } from '../../src/cli/format.js';
import { countRequests, walkMinutes, type CostEstimate } from '../../src/cost/estimate.js';
import { priceSpend } from '../../src/cost/spend.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import type { LedgerLine } from '../../src/db/token-ledger.js';

describe('a walk under its limits', () => {
  it('sizes requests as the walk does: by inputs, then by tokens per request', () => {
    const inputs = Array.from({ length: 10 }, () => ({ tokens: 100 }));
    assert.equal(countRequests(inputs, { maxInputs: 4, maxTokens: Infinity }), 3);
    assert.equal(countRequests(inputs, { maxInputs: 2048, maxTokens: 250 }), 5);
    assert.equal(countRequests([], { maxInputs: 1, maxTokens: 1 }), 0);
  });

  it('takes as long as the tighter budget allows, and has no time without a limit', () => {
    assert.equal(walkMinutes(100, 3_000_000, 3000, 1_000_000), 3);
    assert.equal(walkMinutes(6000, 1000, 3000, 1_000_000), 2);
    assert.equal(walkMinutes(6000, 1000, 3000, undefined), 2);
    assert.equal(walkMinutes(6000, 1000, undefined, undefined), undefined);
  });
});

const line = (over: Partial<LedgerLine>): LedgerLine => ({
  pipeline: 'products',
  mode: 'sync',
  provider: 'openai',
  model: 'text-embedding-3-small',
  period: 'today',
  tokens: 1_000_000,
  requests: 10,
  texts: 100,
  reused: 0,
  ...over,
});

describe('the ledger priced', () => {
  const [config] = parsePipelines({
    pipelines: [
      {
        name: 'products',
        source: { table: 'products' },
        embed: { columns: ['name'] },
        embedding: {
          provider: 'openai',
          model: 'text-embedding-3-large',
          dimensions: 256,
          price: { online: 0.1, batch: 0.05 },
        },
      },
    ],
  });
  assert.ok(config);

  it('prices each model at its price, batch tokens at the batch price, and keeps unknown prices apart', () => {
    const spend = priceSpend(
      [
        line({}),
        line({ mode: 'backfill', tokens: 2_000_000 }),
        line({ mode: 'batch', tokens: 2_000_000 }),
        // The pipeline's own model, at the price it declares.
        line({ mode: 'reembed', model: 'text-embedding-3-large', tokens: 1_000_000, reused: 7 }),
        line({ mode: 'sync', model: 'e5-small', tokens: 500 }),
        line({ period: 'total', tokens: 42 }),
      ],
      [config],
    );
    const t = spend.today;
    assert.equal(t.tokens, 6_000_500);
    assert.equal(t.unpricedTokens, 500);
    assert.equal(t.reused, 7);
    assert.ok(Math.abs(t.cost - (0.02 + 0.04 + 0.02 + 0.1)) < 1e-12, `cost ${t.cost}`);
    assert.deepEqual(Object.keys(t.byMode).sort(), ['backfill', 'batch', 'reembed', 'sync']);
    assert.equal(t.byMode.sync?.tokens, 1_000_500);
    assert.equal(spend.total.tokens, 42);
    assert.equal(spend.last30Days.tokens, 0);
  });
});

const estimate = (over: Partial<CostEstimate>): CostEstimate => ({
  pipeline: 'products',
  kind: 'backfill',
  generation: 1,
  provider: 'openai',
  model: 'text-embedding-3-small',
  rows: 1_000_000,
  rowsToEmbed: 990_000,
  rowsSkipped: 10_000,
  chunks: 1_250_000,
  distinctTexts: 1_240_000,
  textsOnRecord: 0,
  tokens: 180_000_000,
  chunkTokens: 181_000_000,
  tokensEstimated: false,
  unit: 'tokens',
  requests: 2_000,
  price: { online: 0.02, batch: 0.01 },
  priceSource: 'list',
  cost: { online: 3.6, batch: 1.8 },
  limits: { requestsPerMinute: 3000, tokensPerMinute: 1_000_000 },
  minutes: 180,
  ...over,
});

describe('the dry run as printed', () => {
  it('says what will be embedded, paid and waited for', () => {
    const text = describeEstimate(estimate({}), 'public.products');
    assert.match(text, /^products: backfill, dry run: nothing was started and nothing sent$/m);
    assert.match(
      text,
      /rows +1,000,000 rows in public\.products; 990,000 to embed \(10,000 already match/,
    );
    assert.match(text, /chunks +1,250,000, 1,240,000 distinct texts/);
    assert.match(text, /tokens +180,000,000, counted with text-embedding-3-small's tokenizer/);
    assert.match(text, /price +\$3\.60 online, \$1\.80 in batch mode \(list price/);
    assert.match(text, /time +at least 3 h 00 min under 1,000,000 tokens\/min and 3,000 requests/);
  });

  it('says when tokens are estimated, the price unknown, or no limit declared', () => {
    const text = describeEstimate(
      estimate({
        provider: 'bedrock',
        model: 'amazon.titan-embed-text-v2:0',
        tokensEstimated: true,
        unit: 'characters',
        price: undefined,
        priceSource: undefined,
        cost: { online: undefined, batch: undefined },
        limits: { requestsPerMinute: undefined, tokensPerMinute: undefined },
        minutes: undefined,
      }),
      'public.products',
    );
    assert.match(text, /tokens +180,000,000, estimated at 1 token per 3 characters/);
    assert.match(text, /price +unknown price for bedrock\/amazon\.titan.*price: \{ online:/);
    assert.match(text, /time +no rate limit declared/);
  });

  it('writes small sums with two significant digits and large ones in cents', () => {
    assert.deepEqual(
      [money(0), money(0.0000123), money(0.0247), money(0.5), money(1234.5)],
      ['$0', '$0.000012', '$0.025', '$0.50', '$1,234.50'],
    );
  });
});
