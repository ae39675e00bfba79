import { OfflineProvider } from './offline.js';
import type { EmbeddingProvider, ProviderRegistry } from './types.js';

export type { EmbeddingProvider, ProviderRegistry } from './types.js';

/** The providers a worker serves. Credentials, where a provider needs them, come from the environment. */
export function createProviders(extra: readonly EmbeddingProvider[] = []): ProviderRegistry {
  const all: EmbeddingProvider[] = [new OfflineProvider(), ...extra];
  return new Map(all.map((p) => [p.name, p]));
}
