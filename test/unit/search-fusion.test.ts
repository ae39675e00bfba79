// Reciprocal rank fusion as decision 27 states it, and the search.language config it searches with.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConfigError,
  embeddingFingerprint,
  parsePipelines,
  textSearchLanguage,
} from '../../src/config/pipeline.js';
import {
  DEFAULT_FUSION,
  fuseRankings,
  FusionError,
  fusionWeights,
  rrfScore,
} from '../../src/search/fusion.js';
import { candidatePool } from '../../src/search/hybrid.js';

const close = (a: number, b: number): void =>
  assert.ok(Math.abs(a - b) < 1e-12, `${a} is not ${b}`);

describe('reciprocal rank fusion', () => {
  it('scores weight / (k + rank) per list, and nothing from a list without the item', () => {
    close(rrfScore(1, 1, DEFAULT_FUSION), 2 / 61);
    close(rrfScore(3, null, DEFAULT_FUSION), 1 / 63);
    close(rrfScore(null, 10, { vectorWeight: 1, textWeight: 2, k: 20 }), 2 / 30);
    assert.equal(rrfScore(null, null, DEFAULT_FUSION), 0);
  });

  it('an item both lists hold beats one ranked first by only one of them', () => {
    const fused = fuseRankings(['a', 'b', 'c'], ['x', 'c', 'y']);
    assert.deepEqual(
      fused.map((f) => f.key),
      ['c', 'a', 'x', 'b', 'y'],
    );
    assert.deepEqual(fused[0], { key: 'c', score: 1 / 63 + 1 / 62, vectorRank: 3, textRank: 2 });
    assert.deepEqual(fused[2], { key: 'x', score: 1 / 61, vectorRank: null, textRank: 1 });
  });

  it('ties go to the better rank on either side, then the vector rank, then the key', () => {
    // a (vector 1) and x (text 1) score the same; b and y too.
    assert.deepEqual(
      fuseRankings(['a', 'b'], ['x', 'y']).map((f) => f.key),
      ['a', 'x', 'b', 'y'],
    );
    assert.deepEqual(
      fuseRankings(['q', 'p'], ['p', 'q']).map((f) => f.key),
      ['q', 'p'],
    );
  });

  it('weights move the order: text weight 3 lifts the text list over the vector list', () => {
    const w = fusionWeights({ textWeight: 3 });
    const fused = fuseRankings(['a', 'b', 'c'], ['c', 'd'], w);
    assert.deepEqual(
      fused.map((f) => f.key),
      ['c', 'd', 'a', 'b'],
    );
    for (const f of fused) close(f.score, rrfScore(f.vectorRank, f.textRank, w));
    // The vector list alone decides with the text weight 0; text-only items score 0.
    const vectorOnly = fuseRankings(['a', 'b'], ['c'], fusionWeights({ textWeight: 0 }));
    assert.deepEqual(
      vectorOnly.map((f) => [f.key, f.score]),
      [
        ['a', 1 / 61],
        ['b', 1 / 62],
        ['c', 0],
      ],
    );
  });

  it('a key repeated in one list keeps its first rank', () => {
    const [first] = fuseRankings(['a', 'a', 'b'], []);
    assert.deepEqual(first, { key: 'a', score: 1 / 61, vectorRank: 1, textRank: null });
    assert.equal(fuseRankings(['a', 'a', 'b'], []).length, 2);
  });

  it('a larger k flattens the head: rank 1 against rank 2 matters less', () => {
    const gap = (k: number): number =>
      rrfScore(1, null, { ...DEFAULT_FUSION, k }) - rrfScore(2, null, { ...DEFAULT_FUSION, k });
    assert.ok(gap(1) > gap(60) && gap(60) > gap(600));
  });

  it('refuses negative, infinite and all-zero weights and a k of 0, naming the option', () => {
    for (const [asked, message] of [
      [{ vectorWeight: -1 }, /vectorWeight must be a number of 0 or more \(got -1\)/],
      [{ textWeight: Infinity }, /textWeight must be a number of 0 or more/],
      [{ vectorWeight: 0, textWeight: 0 }, /must not both be 0/],
      [{ k: 0 }, /k must be a number greater than 0/],
    ] as const) {
      assert.throws(() => fusionWeights(asked), { name: 'FusionError', message });
    }
    assert.ok(new FusionError('x') instanceof Error);
    assert.deepEqual(fusionWeights(), DEFAULT_FUSION);
  });

  it('each side fetches a pool larger than the results wanted, within pgvector’s ceiling', () => {
    assert.equal(candidatePool(1), 50);
    assert.equal(candidatePool(10), 50);
    assert.equal(candidatePool(40), 200);
    assert.equal(candidatePool(1000), 1000);
  });
});

describe('search.language', () => {
  const base = {
    name: 'products',
    source: { table: 'public.products' },
    embed: { columns: ['name'] },
    embedding: { provider: 'offline', dimensions: 64 },
  };

  it('defaults to english and is outside the embedding fingerprint', () => {
    const [plain] = parsePipelines({ pipelines: [base] });
    const [german] = parsePipelines({ pipelines: [{ ...base, search: { language: 'german' } }] });
    assert.ok(plain && german);
    assert.equal(textSearchLanguage(plain), 'english');
    assert.equal(textSearchLanguage(german), 'german');
    assert.equal(embeddingFingerprint(plain), embeddingFingerprint(german));
  });

  it('refuses a name that is no configuration name, and a column pipeline’s search', () => {
    const refused = (pipeline: unknown): ConfigError => {
      try {
        parsePipelines({ pipelines: [pipeline] });
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err;
      }
      assert.fail('expected the config to be refused');
    };
    const bad = refused({ ...base, search: { language: "english'; drop table x" } });
    assert.equal(bad.field, 'pipelines[0].search.language');
    const column = refused({
      ...base,
      destination: { column: 'embedding' },
      search: { language: 'english' },
    });
    assert.equal(column.field, 'pipelines[0].search');
    assert.match(column.detail, /keeps no chunk text.*leave out search/);
  });
});
