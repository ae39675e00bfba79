// Which embedding the demo uses: the local model when its files are here or can be fetched now,
// the offline provider otherwise. Search is the first thing a new user tries, and hashed words
// rank "Beginner Woodworking" above a warm parka for "something warm for hiking".
import path from 'node:path';
import { FETCH_COMMAND, fetchLocalModel, missingModelFiles } from '../providers/local-fetch.js';
import {
  DEFAULT_LOCAL_MODEL,
  DEFAULT_LOCAL_RERANK_MODEL,
  findLocalModel,
  findLocalRerankModel,
} from '../providers/local-models.js';

const EXAMPLES = path.resolve(import.meta.dirname, '../../examples');
/** The demo pipeline with the local model, and with the offline provider. */
export const DEMO_CONFIGS = {
  local: path.join(EXAMPLES, 'products-local.yaml'),
  offline: path.join(EXAMPLES, 'products.yaml'),
} as const;

export type DemoEmbedding = keyof typeof DEMO_CONFIGS;

/**
 * 'local' when the demo's model is in modelsDir, fetching it first if it is not (once, about 20 MB);
 * 'offline', said in one line, when it cannot be had.
 */
export async function chooseDemoEmbedding(
  modelsDir: string,
  say: (line: string) => void,
  fetch: typeof fetchLocalModel = fetchLocalModel,
): Promise<DemoEmbedding> {
  const model = findLocalModel(DEFAULT_LOCAL_MODEL);
  if (!model) return 'offline';
  if (missingModelFiles(modelsDir, model).length === 0) return 'local';
  say(`fetching the local model ${model.name} into ${modelsDir} (once)…`);
  try {
    await fetch(modelsDir, model, (line) => say(`  ${line}`));
    return 'local';
  } catch (err) {
    say(
      `the local model could not be fetched (${(err as Error).message}); the demo uses the offline provider (hashed words, no semantics)`,
    );
    return 'offline';
  }
}

/**
 * The local demo pipeline's cross-encoder (decision 30), fetched once beside the embedding model so
 * `search --rerank` works from the first search. True when it is there; when it cannot be had, one
 * line says so and how to fetch it later: the demo itself does not need it.
 */
export async function fetchDemoReranker(
  modelsDir: string,
  say: (line: string) => void,
  fetch: typeof fetchLocalModel = fetchLocalModel,
): Promise<boolean> {
  const model = findLocalRerankModel(DEFAULT_LOCAL_RERANK_MODEL);
  if (!model) return false;
  if (missingModelFiles(modelsDir, model).length === 0) return true;
  say(`fetching the reranker ${model.name} into ${modelsDir} (once, for search --rerank)…`);
  try {
    await fetch(modelsDir, model, (line) => say(`  ${line}`));
    return true;
  } catch (err) {
    say(
      `the reranker could not be fetched (${(err as Error).message}); search --rerank needs it: ${FETCH_COMMAND} --model ${model.name}`,
    );
    return false;
  }
}
