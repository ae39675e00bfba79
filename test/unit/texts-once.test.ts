// A text is embedded once: which texts of a request are sent, reused or waited for, decided from one
// claim's answer (src/texts/once.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vectorSettings } from '../../src/config/pipeline.js';
import {
  decideTexts,
  FIRST_LOOK_MS,
  LONGEST_LOOK_MS,
  nextLook,
  textKey,
} from '../../src/texts/once.js';

const openai = {
  provider: 'openai' as const,
  model: 'text-embedding-3-small',
  dimensions: 512,
  apiKeyEnv: 'OPENAI_API_KEY',
  encodingFormat: 'float' as const,
};

describe('text keys', () => {
  it('the same text under the same model settings has one key', () => {
    const s = vectorSettings(openai);
    assert.equal(textKey(s, 'Product: Tent'), textKey(s, 'Product: Tent'));
    assert.match(textKey(s, 'Product: Tent'), /^[0-9a-f]{64}$/);
  });

  it('any setting that changes the vector changes the key', () => {
    const key = (e: Parameters<typeof vectorSettings>[0]) => textKey(vectorSettings(e), 'a text');
    const base = key(openai);
    assert.notEqual(key({ ...openai, dimensions: 256 }), base);
    assert.notEqual(key({ ...openai, model: 'text-embedding-3-large' }), base);
    assert.notEqual(key({ ...openai, baseURL: 'http://127.0.0.1:11434/v1' }), base);
    assert.notEqual(textKey(vectorSettings(openai, 'query'), 'a text'), base);
    const titan = {
      provider: 'bedrock' as const,
      model: 'amazon.titan-embed-text-v2:0',
      dimensions: 512,
    };
    assert.notEqual(key({ ...titan, normalize: false }), key({ ...titan, normalize: true }));
  });

  it('settings that only change how vectors are fetched share the key', () => {
    const base = textKey(vectorSettings(openai), 'a text');
    const fetchedOtherwise = {
      ...openai,
      apiKeyEnv: 'OTHER_KEY',
      encodingFormat: 'base64' as const,
      requestsPerMinute: 100,
      tokensPerMinute: 10_000,
      maxInputsPerRequest: 16,
    };
    assert.equal(textKey(vectorSettings(fetchedOtherwise), 'a text'), base);
  });

  it('a text is not confused with the settings that precede it', () => {
    assert.notEqual(textKey('ab', 'c'), textKey('a', 'bc'));
  });
});

describe('deciding the texts of a request', () => {
  it('claimed texts are sent, known ones reused, held ones waited for', () => {
    const d = decideTexts(
      ['a', 'b', 'c'],
      [
        { key: 'a', claimed: true, embedding: null },
        { key: 'b', claimed: false, embedding: '[1,2]' },
        { key: 'c', claimed: false, embedding: null },
      ],
    );
    assert.deepEqual(d.send, ['a']);
    assert.deepEqual([...d.reuse], [['b', '[1,2]']]);
    assert.deepEqual(d.wait, ['c']);
  });

  it('a text the claim neither took nor saw is being inserted by another batch: waited for', () => {
    const d = decideTexts(['a', 'b'], [{ key: 'a', claimed: true, embedding: null }]);
    assert.deepEqual(d.send, ['a']);
    assert.deepEqual(d.wait, ['b']);
  });

  it('a key asked for twice is decided once', () => {
    const d = decideTexts(
      ['a', 'a', 'b', 'a'],
      [
        { key: 'a', claimed: true, embedding: null },
        { key: 'b', claimed: false, embedding: '[0]' },
      ],
    );
    assert.deepEqual(d.send, ['a']);
    assert.equal(d.reuse.size, 1);
    assert.deepEqual(d.wait, []);
  });
});

describe('waiting for texts another batch holds', () => {
  it('looks again soon, then less often, up to a longest wait', () => {
    const waits: number[] = [];
    let waited = 0;
    let last = 0;
    for (let i = 0; i < 8; i += 1) {
      const next = nextLook(waited, last, 60_000);
      assert.ok(next !== undefined);
      waits.push(next);
      waited += next;
      last = next;
    }
    assert.equal(waits[0], FIRST_LOOK_MS);
    assert.deepEqual(waits.slice(0, 4), [50, 100, 200, 400]);
    assert.ok(waits.every((w) => w <= LONGEST_LOOK_MS));
    assert.equal(waits.at(-1), LONGEST_LOOK_MS);
  });

  it('gives up once the waits add up to twice the lease: every lease held then has expired', () => {
    let waited = 0;
    let last = 0;
    let looks = 0;
    for (;;) {
      const next = nextLook(waited, last, 2000);
      if (next === undefined) break;
      waited += next;
      last = next;
      looks += 1;
    }
    assert.ok(waited >= 4000, `gave up after ${waited} ms of waits`);
    assert.ok(waited < 4000 + LONGEST_LOOK_MS);
    assert.ok(looks > 3);
  });
});
