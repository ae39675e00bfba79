// A row the provider refuses is isolated by bisection and set aside in embedsync.dead_letters with
// its error, while the rest of its batch is written; a refusal of everything fails the batch
// instead.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { verifyPipeline } from '../../src/verify/verify.js';
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
const POISON = '\u2620';

setEnv({
  EMBEDSYNC_TEST_OPENAI_KEY: 'sk-test-dead-letters-0000',
  AWS_ACCESS_KEY_ID: 'AKIAMOCKDEADLETTERS0',
  AWS_SECRET_ACCESS_KEY: 'mock-secret-dead-letters',
});

interface DeadLetter {
  pipeline: string;
  pk: string;
  generation: number;
  content_hash: string;
  error: string;
}

async function deadLetters(pipeline: string): Promise<DeadLetter[]> {
  const { rows } = await h.db.pool.query<DeadLetter>(
    'select pipeline, pk, generation, content_hash, error from embedsync.dead_letters where pipeline = $1 order by pk',
    [pipeline],
  );
  return rows;
}

async function insertRows(table: string, first: number, bodies: string[]): Promise<string[]> {
  const ids = bodies.map((_, i) => String(first + i));
  await h.db.pool.query(
    `insert into ${table} (id, title, body) select i::bigint, 'Item ' || i, b from unnest($1::text[], $2::text[]) as s(i, b)`,
    [ids, bodies],
  );
  return ids;
}

describe('dead letters', () => {
  before(async () => {
    h = await startProviderHarness('dead_letters', {
      pipelines: (mockUrl) => [
        itemsPipeline('poisoned', {
          provider: 'openai',
          model: 'text-embedding-3-small',
          dimensions: 64,
          baseURL: `${mockUrl}/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY',
        }),
        itemsPipeline('titan_poisoned', {
          provider: 'bedrock',
          model: 'amazon.titan-embed-text-v2:0',
          dimensions: 256,
        }),
        itemsPipeline('refused', {
          provider: 'openai',
          model: 'text-embedding-3-small',
          dimensions: 64,
          baseURL: `${mockUrl}/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY',
        }),
      ],
      mock: { poisonMarker: POISON },
    });
  });
  after(async () => h.stop());
  beforeEach(() => h.mock.reset());

  it('a poisoned row is isolated and dead-lettered while its batch-mates are written', async () => {
    const bodies = [
      'Good one',
      'Good two',
      'Good three',
      `Bad ${POISON} content`,
      'Good five',
      'Good six',
      'Good seven',
      'Good eight',
    ];
    const ids = await insertRows('poisoned', 1, bodies);
    const bad = ids[3] ?? '';
    await waitFor('the dead letter', async () => (await deadLetters('poisoned')).length === 1);
    await waitFor('the good rows', async () => {
      const counts = await Promise.all(
        ids
          .filter((id) => id !== bad)
          .map(async (id) => (await chunksOf(h, 'poisoned', id)).length),
      );
      return counts.every((n) => n === 1);
    });
    assert.equal((await chunksOf(h, 'poisoned', bad)).length, 0);
    const [letter] = await deadLetters('poisoned');
    assert.equal(letter?.pk, bad);
    assert.equal(letter?.generation, 1);
    assert.match(letter?.error ?? '', /input\[0\]' is invalid/);
    assert.equal(letter?.content_hash.length, 64);
    // verify counts the refused row as missing, and says it is a dead letter.
    const report = await verifyPipeline(h.db.pool, 'poisoned');
    assert.deepEqual(
      { missing: report.missing, deadLettered: report.deadLettered },
      { missing: [bad], deadLettered: [bad] },
    );
    // Every good row was sent (and paid for) exactly once; bisection cost a few refused requests.
    const accepted = h.mock.requests.filter((r) => r.status === 200).flatMap((r) => r.inputs);
    assert.equal(accepted.length, 7);
    assert.equal(new Set(accepted).size, 7);
    assert.ok(
      h.mock.requests.length <= 1 + 2 * Math.ceil(Math.log2(8)),
      `${h.mock.requests.length} requests to isolate one input of eight`,
    );
    assert.equal((await workflowIds(h, 'Failed')).length, 0);
  });

  it('a row whose new content is refused keeps its previous vectors, and is embedded again once fixed', async () => {
    const [id = ''] = await insertRows('poisoned', 100, ['Original description']);
    await waitFor(
      'the first vectors',
      async () => (await chunksOf(h, 'poisoned', id)).length === 1,
    );
    await h.db.pool.query(`update poisoned set body = $2 where id = $1`, [
      id,
      `Edited ${POISON} description`,
    ]);
    await waitFor('the dead letter', async () =>
      (await deadLetters('poisoned')).some((d) => d.pk === id),
    );
    assert.deepEqual(
      (await chunksOf(h, 'poisoned', id)).map((c) => c.chunk),
      ['Title: Item 100\nOriginal description'],
    );
    await h.db.pool.query(`update poisoned set body = 'Fixed description' where id = $1`, [id]);
    await waitFor('the fixed vectors', async () =>
      (await chunksOf(h, 'poisoned', id))[0]?.chunk.endsWith('Fixed description'),
    );
  });

  it('a model that takes one text per call isolates the refused row without bisecting', async () => {
    const ids = await insertRows('titan_poisoned', 200, [
      'Alpha',
      `Beta ${POISON}`,
      'Gamma',
      'Delta',
    ]);
    await waitFor(
      'the dead letter',
      async () => (await deadLetters('titan_poisoned')).length === 1,
    );
    await waitFor('the good rows', async () =>
      (
        await Promise.all(
          [ids[0], ids[2], ids[3]].map(
            async (id) => (await chunksOf(h, 'titan_poisoned', id ?? '')).length,
          ),
        )
      ).every((n) => n === 1),
    );
    assert.equal((await deadLetters('titan_poisoned'))[0]?.pk, ids[1]);
    assert.equal(h.mock.requests.length, 4);
  });

  it('when every input is refused the request is at fault: the batch fails, no row is blamed, and its keys are kept', async () => {
    const keys = await insertRows('refused', 300, [
      `One ${POISON}`,
      `Two ${POISON}`,
      `Three ${POISON}`,
      `Four ${POISON}`,
    ]);
    const [id] = await waitFor('a failed workflow', async () => {
      const failed = await workflowIds(h, 'Failed');
      return failed.length > 0 ? failed : false;
    });
    const failure = await activityFailure(h, id ?? '');
    assert.equal(failure?.type, 'RequestRefusedError');
    assert.equal(failure.nonRetryable, true);
    // No row was isolated as the culprit (those carry their content hash); the failed batch's keys
    // are kept with an empty hash so that verify --requeue can send them round again.
    const kept = await waitFor('the batch keys', async () => {
      const rows = await deadLetters('refused');
      return rows.length === keys.length ? rows : false;
    });
    assert.deepEqual(
      kept.map((r) => r.content_hash),
      keys.map(() => ''),
    );
    assert.deepEqual(kept.map((r) => r.pk).sort(), [...keys].sort());
  });
});

describe('failed batches', () => {
  let f: ProviderHarness;
  const letters = async (): Promise<(DeadLetter & { attempts: number })[]> =>
    (
      await f.db.pool.query<DeadLetter & { attempts: number }>(
        `select pipeline, pk, generation, content_hash, error, attempts from embedsync.dead_letters order by pk`,
      )
    ).rows;
  before(async () => {
    f = await startProviderHarness('failed_batches', {
      pipelines: (mockUrl) => [
        itemsPipeline('quota', {
          provider: 'openai',
          model: 'text-embedding-3-small',
          dimensions: 64,
          baseURL: `${mockUrl}/v1`,
          apiKeyEnv: 'EMBEDSYNC_TEST_OPENAI_KEY',
        }),
      ],
      mock: { poisonMarker: POISON },
      // Five minutes, doubling, in production.
      poller: {
        deadLetterCheckMs: 200,
        deadLetterRetry: { firstAfterMs: 1500, maxAfterMs: 60_000 },
      },
    });
  });
  after(async () => f.stop());

  it('are sent round again, less and less often, until they succeed; refused rows are not', async () => {
    f.mock.inject({ kind: 'quota' }, 2);
    await f.db.pool.query(
      `insert into quota (id, title, body) values (1, 'Item 1', 'Stove'), (2, 'Item 2', 'Bad ${POISON} fuel')`,
    );
    // The first attempt fails for good: both keys are kept, the row's content never read.
    const first = await waitFor('the failed batch', async () => {
      const rows = await letters();
      return rows.length === 2 && rows.every((r) => r.content_hash === '') ? rows : false;
    });
    assert.match(first[0]?.error ?? '', /quota/i);
    const { rows: staged } = await f.db.pool.query<{ n: number }>(
      'select (select count(*) from embedsync.staged_rows) + (select count(*) from embedsync.staged_chunks) as n',
    );
    assert.equal(staged[0]?.n, 0, 'the failed batch left nothing staged');
    // The second, after the first wait, fails the same way; the third (after twice the wait) gets
    // through.
    await waitFor(
      'a second failure',
      async () => (await letters()).some((r) => r.attempts === 2),
      15_000,
    );
    await waitFor(
      'the stove embedded',
      async () => (await chunksOf(f, 'quota', '1')).length === 1,
      30_000,
    );
    const quotaAnswers = f.mock.requests.filter((r) => r.status === 429).map((r) => r.at);
    assert.equal(quotaAnswers.length, 2);
    const ok = f.mock.requests.filter((r) => r.status === 200).map((r) => r.at);
    assert.ok(
      (ok[0] ?? 0) - (quotaAnswers[1] ?? 0) >= 3000 - 200,
      'the third attempt waited twice as long as the second',
    );
    // The stove's letter is gone; the poisoned row now has a letter of its own, which stays.
    const [poisoned, ...rest] = await waitFor('only the refused row left', async () => {
      const rows = await letters();
      return rows.length === 1 ? rows : false;
    });
    assert.deepEqual(rest, []);
    assert.equal(poisoned?.pk, '2');
    assert.equal(poisoned?.content_hash.length, 64);
    const sent = f.mock.requests.length;
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(
      f.mock.requests.length,
      sent,
      'a refused row is not sent again until its content changes',
    );
  });
});
