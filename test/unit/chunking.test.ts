import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitText } from '../../src/chunking/split.js';

const length = (s: string): number => Array.from(s).length;

describe('chunking', () => {
  it('keeps a short text whole', () => {
    assert.deepEqual(splitText('Short text.', { size: 100, overlap: 10 }), ['Short text.']);
  });

  it('gives no chunk for empty or blank text', () => {
    assert.deepEqual(splitText('', { size: 100, overlap: 10 }), []);
    assert.deepEqual(splitText(' \n\t ', { size: 100, overlap: 10 }), []);
  });

  it('never exceeds the size and covers every word of the text', () => {
    const words = Array.from({ length: 2000 }, (_, i) => `word${i}`);
    const text = words.join(' ');
    const chunks = splitText(text, { size: 120, overlap: 20 });
    assert.ok(
      chunks.every((c) => length(c) <= 120),
      'a chunk is longer than the size',
    );
    const seen = new Set(chunks.flatMap((c) => c.split(' ')));
    assert.ok(
      words.every((w) => seen.has(w)),
      'a word was lost between chunks',
    );
  });

  it('repeats the end of a chunk at the start of the next one', () => {
    const text = Array.from({ length: 50 }, (_, i) => `Sentence number ${i} is here.`).join(' ');
    const [first, second] = splitText(text, { size: 200, overlap: 60 });
    assert.ok(first && second);
    const lastWords = first.split(' ').slice(-3).join(' ');
    assert.ok(
      second.includes(lastWords),
      `expected "${lastWords}" to open the second chunk: ${second}`,
    );
  });

  it('prefers paragraph boundaries to cutting sentences', () => {
    const para = (n: number) => `Paragraph ${n} talks about one thing only.`;
    const chunks = splitText([para(1), para(2), para(3)].join('\n\n'), { size: 90, overlap: 0 });
    assert.deepEqual(chunks, [`${para(1)}\n\n${para(2)}`, para(3)]);
  });

  it('never splits an emoji or a CJK character in half', () => {
    const text = '🏔️⛺登山'.repeat(300);
    const chunks = splitText(text, { size: 50, overlap: 5 });
    assert.ok(chunks.length > 10);
    for (const c of chunks) {
      assert.ok(length(c) <= 50);
      assert.ok(
        !/[\uD800-\uDBFF]$/.test(c) && !/^[\uDC00-\uDFFF]/.test(c),
        'a surrogate pair was cut',
      );
    }
  });

  it('chunks 1 MB of unbroken text into bounded pieces', () => {
    const chunks = splitText('x'.repeat(1_000_000), { size: 2000, overlap: 200 });
    assert.ok(chunks.every((c) => c.length <= 2000));
    assert.ok(chunks.length >= 500 && chunks.length <= 600, `got ${chunks.length}`);
  });
});
