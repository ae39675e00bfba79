// Asking an OpenAI-compatible server, at apply, what a model embedsync does not know produces
// (docs/architecture.md, decision 26): one request of one word, so that declared dimensions the
// model does not produce are refused before a vector table is made for them, not row by row.
import {
  ConfigError,
  type EmbeddingConfig,
  type OpenAIEmbeddingConfig,
} from '../config/pipeline.js';
import { scrub } from './errors.js';
import { isKnownModel } from './models.js';
import type { EmbeddingProvider } from './types.js';

/** The dimensions of the vectors a model answers with. */
export type DimensionsProbe = (embedding: OpenAIEmbeddingConfig) => Promise<number>;

/** A model only a compatible server can say anything about. */
export const needsProbe = (embedding: EmbeddingConfig): embedding is OpenAIEmbeddingConfig =>
  embedding.provider === 'openai' && !isKnownModel(embedding);

/** The probe through a provider: its client, its key handling, its scrubbed errors. */
export function probeWith(provider: EmbeddingProvider): DimensionsProbe {
  return async (embedding) => {
    const { vectors } = await provider.embed({
      model: embedding.model,
      dimensions: embedding.dimensions,
      inputType: 'document',
      texts: ['probe'],
      embedding,
    });
    const vector = vectors[0];
    if (!vector) throw new Error('the server answered with no vector');
    return vector.length;
  };
}

/** A server's URL as messages may show it: no user, password, query or fragment. */
export function serverName(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname.replace(/\/$/, '')}`;
  } catch {
    return '(an invalid URL)';
  }
}

/** A URL's user and password, which a message must not repeat. */
function urlSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    return [decodeURIComponent(u.password), decodeURIComponent(u.username), u.password, u.username];
  } catch {
    return [];
  }
}

/**
 * Refuses a pipeline whose model, asked once, answers with other dimensions than it declares, or
 * cannot be asked: a server that cannot answer apply cannot answer the backfill either, and a
 * mismatch found then fails every batch (`--no-probe` takes the declared dimensions on trust).
 */
export async function checkProbedDimensions(
  embedding: OpenAIEmbeddingConfig,
  server: string,
  probe: DimensionsProbe,
): Promise<void> {
  const where = `${embedding.model} at ${serverName(server)}`;
  let actual: number;
  try {
    actual = await probe(embedding);
  } catch (err) {
    const why = scrub(err instanceof Error ? err.message : String(err), urlSecrets(server));
    throw new ConfigError(
      'embedding.model',
      `could not ask ${where} for its dimensions: ${why}; start the server (or fix its address), or apply with --no-probe to take embedding.dimensions (${embedding.dimensions}) on trust`,
    );
  }
  if (actual !== embedding.dimensions) {
    throw new ConfigError(
      'embedding.dimensions',
      `is ${embedding.dimensions}, but ${where} produces ${actual}-dimension vectors (asked at apply); declare dimensions: ${actual}`,
    );
  }
}
