import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tiktoken } from 'js-tiktoken/lite';
import cl100kBase from 'js-tiktoken/ranks/cl100k_base';
import { splitText } from '../../src/chunking/split.js';
import { chunkMeasure, countTokens, estimateTokens } from '../../src/chunking/tokens.js';

const reference = new Tiktoken(cl100kBase);
const exact = (text: string): number => reference.encode(text, [], []).length;

describe('token counting', () => {
  it('counts cl100k tokens exactly as tiktoken does', () => {
    const samples = [
      'Lorem ipsum dolor sit amet, consectetur adipiscing elit.',
      '登山靴は防水性に優れた軽量の靴です。',
      '🏔️⛺ emoji  and\n\n  spaces\t\ttabs',
      "It's 12345678 o'clock <|endoftext|> don't",
      'https://example.com/a?b=c&d=e',
      'def f(x):\n    return x**2\n',
      'Ünïcödé façade naïve — “quotes”',
      '',
    ];
    for (const s of samples) assert.equal(countTokens(s), exact(s), JSON.stringify(s));
  });

  it('counts a megabyte without spaces in well under a second, never undercounting', () => {
    for (const text of ['x'.repeat(1_000_000), '登山靴'.repeat(100_000)]) {
      const started = Date.now();
      const n = countTokens(text);
      assert.ok(Date.now() - started < 3000, 'counting took too long');
      const sample = text.slice(0, 3000);
      assert.ok(countTokens(sample) >= exact(sample));
      assert.ok(n > 0);
    }
  });

  it('measures OpenAI pipelines in tokens and the others in characters', () => {
    assert.equal(
      chunkMeasure({
        provider: 'openai',
        model: 'text-embedding-3-small',
        dimensions: 256,
        apiKeyEnv: 'OPENAI_API_KEY',
        encodingFormat: 'float',
      }),
      countTokens,
    );
    assert.equal(
      chunkMeasure({ provider: 'bedrock', model: 'amazon.titan-embed-text-v2:0', dimensions: 256 }),
      undefined,
    );
    assert.equal(
      chunkMeasure({ provider: 'offline', model: 'feature-hash-v1', dimensions: 64 }),
      undefined,
    );
    assert.equal(
      estimateTokens(
        { provider: 'bedrock', model: 'cohere.embed-english-v3', dimensions: 1024 },
        'abcdefghi',
      ),
      3,
    );
  });
});

describe('token-aware chunking', () => {
  const words = Array.from({ length: 4000 }, (_, i) => `w${i}`);
  const text = words.join(' ');

  it('keeps every chunk within the size in tokens, with overlap, losing no word', () => {
    const chunks = splitText(text, { size: 300, overlap: 30, measure: countTokens });
    assert.ok(chunks.length > 20);
    assert.ok(chunks.every((c) => countTokens(c) <= 300));
    const seen = new Set(chunks.flatMap((c) => c.split(' ')));
    assert.ok(words.every((w) => seen.has(w)));
    // The overlap: the second chunk opens with words the first one ended with.
    const [first = '', second = ''] = chunks;
    assert.ok(
      first
        .split(' ')
        .slice(-30)
        .includes(second.split(' ')[0] ?? '?'),
    );
  });

  it('repeats the row context at the head of every chunk, within the size', () => {
    const context = 'Title: Alpine tent';
    const chunks = splitText(`${context}\n${text}`, {
      size: 300,
      overlap: 30,
      measure: countTokens,
      context,
    });
    assert.ok(chunks.length > 20);
    assert.ok(chunks.every((c) => c.startsWith(context)));
    assert.ok(chunks.every((c) => countTokens(c) <= 300));
    assert.equal(chunks.filter((c) => c.startsWith(`${context}\n${context}`)).length, 0);
  });

  it('splits a text that fits the size in characters but not in tokens', () => {
    const emoji = '🏔️'.repeat(200); // 400 code points, far more tokens
    assert.deepEqual(splitText(emoji, { size: 500, overlap: 50 }), [emoji]);
    const chunks = splitText(emoji, { size: 500, overlap: 50, measure: countTokens });
    assert.ok(chunks.length > 1);
    assert.ok(chunks.every((c) => countTokens(c) <= 500));
  });
});
