// What providers charge per million input tokens, online and through a batch API, for the models
// src/providers/models.ts knows (list prices in US dollars, as published in 2026). A pipeline may
// declare its own (`embedding.price`): negotiated rates, a compatible server's, a price that moved.
// Used to estimate: `status` prices the token ledger, `--dry-run` a backfill before it starts.
import type { EmbeddingConfig } from '../config/pipeline.js';
import { baseModelId } from './models.js';

/** US dollars per million input tokens. `batch` is absent where no batch mode is offered. */
export interface ModelPrice {
  online: number;
  batch?: number;
}

const LIST_PRICES: Readonly<Record<string, ModelPrice>> = {
  'offline/feature-hash-v1': { online: 0, batch: 0 },
  // Run in the worker: the cost is its CPU time, not a bill.
  'local/all-MiniLM-L6-v2': { online: 0 },
  // OpenAI's Batch API is half the online price.
  'openai/text-embedding-3-small': { online: 0.02, batch: 0.01 },
  'openai/text-embedding-3-large': { online: 0.13, batch: 0.065 },
  'openai/text-embedding-ada-002': { online: 0.1, batch: 0.05 },
  // Bedrock's batch inference needs S3 and an IAM role; embedsync does not offer it.
  'bedrock/amazon.titan-embed-text-v2:0': { online: 0.02 },
  'bedrock/amazon.titan-embed-text-v1': { online: 0.1 },
  'bedrock/cohere.embed-english-v3': { online: 0.1 },
  'bedrock/cohere.embed-multilingual-v3': { online: 0.1 },
  'bedrock/cohere.embed-v4:0': { online: 0.12 },
  // Gemini's Batch API (half price) is not offered by embedsync.
  'gemini/gemini-embedding-001': { online: 0.15 },
  // Voyage's Batch API is not offered by embedsync; its free tokens per account are not counted.
  'voyage/voyage-3.5': { online: 0.06 },
  'voyage/voyage-3.5-lite': { online: 0.02 },
  'voyage/voyage-3-large': { online: 0.18 },
  'voyage/voyage-code-3': { online: 0.18 },
  'voyage/voyage-4': { online: 0.06 },
  'voyage/voyage-4-lite': { online: 0.02 },
  'voyage/voyage-4-large': { online: 0.12 },
};

/** The list price of a provider's model, if known. */
export function listPrice(provider: string, model: string): ModelPrice | undefined {
  const id = baseModelId(provider as EmbeddingConfig['provider'], model);
  return LIST_PRICES[`${provider}/${id}`];
}

/** The price a pipeline's embedding pays: its declared one, else the list price. */
export function priceOf(embedding: EmbeddingConfig): ModelPrice | undefined {
  if ('price' in embedding && embedding.price) return embedding.price;
  return listPrice(embedding.provider, embedding.model);
}

/** Dollars for `tokens` at `price`, online or in batch mode; undefined if the price is unknown. */
export function costOf(
  tokens: number,
  price: ModelPrice | undefined,
  mode: 'online' | 'batch' = 'online',
): number | undefined {
  const perMillion = mode === 'batch' ? price?.batch : price?.online;
  return perMillion === undefined ? undefined : (tokens / 1_000_000) * perMillion;
}
