// The offline provider: hashed word and character-trigram features folded into d dimensions,
// L2-normalised. Deterministic, free and network-free, so development and tests need no keys.
// Texts that share words land near each other, which is enough to exercise search.
import type { EmbeddingProvider, EmbedRequest, EmbedResponse } from './types.js';

const WORD = /[\p{L}\p{N}]+/gu;

// FNV-1a: fast, stable across platforms and releases (the vectors must never change for a given
// text).
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function bucket(feature: string, dimensions: number): { index: number; sign: number } {
  const hash = fnv1a(feature);
  return { index: (hash >>> 1) % dimensions, sign: hash & 1 ? 1 : -1 };
}

export function featureHashEmbedding(text: string, dimensions: number): number[] {
  const vector = new Array<number>(dimensions).fill(0);
  const words = text.toLowerCase().match(WORD) ?? [];
  for (const word of words) {
    const { index, sign } = bucket(`w:${word}`, dimensions);
    vector[index] = (vector[index] ?? 0) + 2 * sign;
    const padded = `^${word}$`;
    for (let i = 0; i + 3 <= padded.length; i += 1) {
      const tri = bucket(`t:${padded.slice(i, i + 3)}`, dimensions);
      vector[tri.index] = (vector[tri.index] ?? 0) + tri.sign;
    }
  }
  const norm = Math.sqrt(vector.reduce((sum, v) => sum + v * v, 0));
  if (norm === 0) {
    // No word characters at all (emoji only, say): a fixed unit vector keeps the row searchable.
    vector[0] = 1;
    return vector;
  }
  return vector.map((v) => v / norm);
}

export class OfflineProvider implements EmbeddingProvider {
  readonly name = 'offline';
  readonly maxInputsPerRequest = 256;

  embed(request: EmbedRequest): Promise<EmbedResponse> {
    const vectors = request.texts.map((t) => featureHashEmbedding(t, request.dimensions));
    const tokens = request.texts.reduce((sum, t) => sum + (t.match(WORD)?.length ?? 0), 0);
    return Promise.resolve({ vectors, tokens });
  }
}
