import { readProviderEnv, type ProviderEnv } from '../config/env.js';
import { BedrockProvider } from './bedrock.js';
import { GeminiProvider } from './gemini.js';
import { LocalProvider } from './local.js';
import { OfflineProvider } from './offline.js';
import { OpenAIProvider } from './openai.js';
import { VoyageProvider } from './voyage.js';
import type { EmbeddingProvider, ProviderRegistry } from './types.js';

export type { EmbeddingProvider, ProviderRegistry } from './types.js';

/**
 * The providers a worker serves: offline, OpenAI (and compatible servers), Bedrock, Gemini,
 * Voyage AI, and models run in this process (local). Their settings come from the environment; credentials are read only when a request
 * needs them, so a worker without OpenAI, AWS, Google or Voyage credentials serves the other
 * providers just the same.
 */
export function createProviders(
  extra: readonly EmbeddingProvider[] = [],
  env: ProviderEnv = readProviderEnv(),
): ProviderRegistry {
  const all: EmbeddingProvider[] = [
    new OfflineProvider(),
    new OpenAIProvider(env.openai),
    new BedrockProvider(env.bedrock),
    new GeminiProvider(env.gemini),
    new VoyageProvider(env.voyage),
    new LocalProvider(env.local),
    ...extra,
  ];
  return new Map(all.map((p) => [p.name, p]));
}
