// The vectors' binary forms, byte for byte: what OpenAI's base64 carries in, what PostgreSQL reads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeVectorArray } from '../../src/db/vector-binary.js';
import { decode } from '../../src/providers/openai.js';

describe('vector binary forms', () => {
  it('writes array_recv framing and vector_recv elements with big-endian float4s', () => {
    const out = encodeVectorArray(
      [
        [1, -0.5, 0.1],
        [2.5, 0],
      ],
      12345,
    );
    const expected = Buffer.concat([
      int32s(1, 0, 12345, 2, 1),
      int32s(4 + 4 * 3),
      int16s(3, 0),
      floats(1, -0.5, 0.1),
      int32s(4 + 4 * 2),
      int16s(2, 0),
      floats(2.5, 0),
    ]);
    assert.deepEqual(out, expected);
    assert.deepEqual(encodeVectorArray([], 7), int32s(1, 0, 7, 0, 1));
  });

  it('reads base64 little-endian float32s into numbers, and passes floats through', () => {
    const sent = [0.25, -1.5, 3.0000001, 1e-8];
    const base64 = Buffer.from(new Float32Array(sent).buffer).toString('base64');
    const read = decode(base64);
    assert.ok(Array.isArray(read));
    assert.deepEqual(read, [...new Float32Array(sent)]);
    assert.equal(decode(sent), sent);
  });
});

function int32s(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeInt32BE(v, 4 * i));
  return b;
}

function int16s(...values: number[]): Buffer {
  const b = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => b.writeInt16BE(v, 2 * i));
  return b;
}

function floats(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeFloatBE(v, 4 * i));
  return b;
}
