import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { featureHashEmbedding, OfflineProvider } from '../../src/providers/offline.js';

const cosine = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * (b[i] ?? 0), 0);

describe('offline provider', () => {
  it('gives unit vectors of the asked dimensions', async () => {
    const { vectors } = await new OfflineProvider().embed({
      model: 'feature-hash-v1',
      dimensions: 96,
      inputType: 'document',
      texts: ['warm jacket', '🔥', ''],
    });
    for (const v of vectors) {
      assert.equal(v.length, 96);
      assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-9);
    }
  });

  it('is deterministic', () => {
    assert.deepEqual(
      featureHashEmbedding('Trail running shoes', 64),
      featureHashEmbedding('Trail running shoes', 64),
    );
  });

  it('places texts that share words nearer than texts that do not', () => {
    const jacket = featureHashEmbedding('warm waterproof hiking jacket', 256);
    const similar = featureHashEmbedding('waterproof jacket for hiking', 256);
    const other = featureHashEmbedding('espresso grinder with steel burrs', 256);
    assert.ok(cosine(jacket, similar) > cosine(jacket, other) + 0.3);
  });
});
