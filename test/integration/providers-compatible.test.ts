// A model embedsync does not know, served by an OpenAI-compatible server (vLLM, TEI, Ollama serving
// multilingual-e5-small), through the real OpenAI SDK against the mock provider: apply finds the
// server in the file or the environment and asks it for the model's dimensions; the declared
// prefixes reach the server on documents and on queries; the declared input limit refuses chunks
// too long and cuts a column's text to it; a backfill that meets wrong dimensions says so.
import { readProviderEnv } from '../../src/config/env.js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startBackfill } from '../../src/backfill/start.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { ConfigError, parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import { getPipeline, instanceId, setSyncPaused } from '../../src/db/catalog.js';
import { changeState } from '../../src/db/pipeline-state.js';
import { createProviders } from '../../src/providers/index.js';
import { search } from '../../src/search/index.js';
import { gatherStatus, stateWords } from '../../src/status/index.js';
import { failureMessage } from '../../src/temporal/failure.js';
import { waitFor } from '../helpers/wait.js';
import {
  chunksOf,
  itemsPipeline,
  setEnv,
  startProviderHarness,
  type ProviderHarness,
} from './providers-helpers.js';

const KEY = 'sk-compat-test-7f3a9c21';
const MODEL = 'multilingual-e5-small';
setEnv({ EMBEDSYNC_TEST_COMPAT_KEY: KEY });

let h: ProviderHarness;
let nextId = 1;
const root = path.resolve(import.meta.dirname, '../..');

/** The e5 model as its server serves it: 384 dimensions, 512 tokens an input. */
const e5 = (serverUrl: string | undefined, extra: Record<string, unknown> = {}) =>
  ({
    provider: 'openai',
    model: MODEL,
    dimensions: 384,
    ...(serverUrl ? { baseURL: serverUrl } : {}),
    apiKeyEnv: 'EMBEDSYNC_TEST_COMPAT_KEY',
    queryPrefix: 'query: ',
    documentPrefix: 'passage: ',
    maxInputTokens: 512,
    ...extra,
  }) as PipelineInput['embedding'];

async function insert(table: string, title: string, body: string): Promise<string> {
  const id = String(nextId++);
  await h.db.pool.query(
    `insert into ${table} (id, title, body, category) values ($1, $2, $3, 'test')`,
    [id, title, body],
  );
  return id;
}

/** Applies one pipeline over a fresh items-shaped table; the ConfigError if it is refused. */
async function applyNew(input: PipelineInput, options = {}): Promise<ConfigError | undefined> {
  await h.db.pool.query(
    `create table if not exists ${input.name} (id bigint primary key, title text, body text, category text)`,
  );
  try {
    await applyPipelines(h.db.pool, parsePipelines({ pipelines: [input] }), options);
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
}

const catalogHas = async (name: string): Promise<boolean> =>
  (await h.db.pool.query(`select 1 from embedsync.pipelines where name = $1`, [name])).rowCount ===
  1;

/** `embedsync apply` as a user runs it: its own process, the environment it is given. */
function cliApply(file: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['bin/embedsync.js', 'apply', '--config', file], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: h.db.url, EMBEDSYNC_TASK_QUEUE: h.taskQueue, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    }),
  );
}

describe('OpenAI-compatible servers serving a model embedsync does not know', () => {
  before(async () => {
    h = await startProviderHarness('compat', {
      pipelines: (mockUrl) => [
        itemsPipeline('e5', e5(`${mockUrl}/v1`), { chunking: { size: 400, overlap: 40 } }),
      ],
      mock: { apiKey: KEY, models: { [MODEL]: { dimensions: 384, maxInputTokens: 512 } } },
    });
  });
  after(async () => h.stop());
  beforeEach(() => h.mock.reset());

  it('documents reach the server with the document prefix and queries with the query prefix; chunks are stored without', async () => {
    const pk = await insert('e5', 'Down parka', 'A warm down parka for winter hiking');
    const chunks = await waitFor('the vectors', async () =>
      (await chunksOf(h, 'e5', pk)).length > 0 ? chunksOf(h, 'e5', pk) : false,
    );
    assert.deepEqual(chunks, [
      { chunk: 'Title: Down parka\nA warm down parka for winter hiking', dims: 384 },
    ]);
    const sent = h.mock.requests.filter((r) => r.model === MODEL).flatMap((r) => r.inputs);
    assert.deepEqual(sent, ['passage: Title: Down parka\nA warm down parka for winter hiking']);

    const providers = createProviders([], {
      ...readProviderEnv({}),
      openai: {},
      bedrock: {},
      gemini: {},
      voyage: {},
    });
    const hits = await search(h.db.pool, providers, 'e5', 'something warm for hiking');
    assert.equal(hits[0]?.pk, pk);
    assert.deepEqual(h.mock.requests.at(-1)?.inputs, ['query: something warm for hiking']);
  });

  it('apply asks the server once: declared dimensions the model does not produce are refused, naming model, server and both sizes', async () => {
    const server = `${h.mock.url}/v1`;
    const refused = await applyNew(itemsPipeline('e5_wrong', e5(server, { dimensions: 512 })));
    assert.ok(refused, 'the pipeline was applied');
    assert.equal(refused.field, 'pipelines[0].embedding.dimensions');
    assert.equal(
      refused.detail,
      `is 512, but ${MODEL} at ${server} produces 384-dimension vectors (asked at apply); declare dimensions: 384`,
    );
    assert.equal(await catalogHas('e5_wrong'), false);
    // One request of one word, as a document.
    assert.deepEqual(
      h.mock.requests.map((r) => r.inputs),
      [['passage: probe']],
    );
    assert.doesNotMatch(refused.message, new RegExp(KEY));

    assert.equal(await applyNew(itemsPipeline('e5_right', e5(server))), undefined);
    assert.equal(await catalogHas('e5_right'), true);
  });

  it('an unreachable server refuses apply without repeating its credentials; --no-probe takes the dimensions on trust', async () => {
    const server = 'http://embedder:s3cret-pass@127.0.0.1:9/v1';
    const input = itemsPipeline('e5_away', e5(server));
    const refused = await applyNew(input);
    assert.ok(refused, 'the pipeline was applied');
    assert.equal(refused.field, 'pipelines[0].embedding.model');
    assert.match(
      refused.detail,
      new RegExp(
        `^could not ask ${MODEL} at http://127\\.0\\.0\\.1:9/v1 for its dimensions: .*--no-probe`,
      ),
    );
    assert.doesNotMatch(refused.message, /s3cret-pass|embedder/);
    assert.doesNotMatch(refused.message, new RegExp(KEY));
    assert.equal(await catalogHas('e5_away'), false);
    assert.equal(await applyNew(input, { probe: false }), undefined);
    assert.equal(await catalogHas('e5_away'), true);
  });

  it('apply takes the server from OPENAI_BASE_URL in the environment as well as from the file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'embedsync-compat-'));
    const file = path.join(dir, 'e5.yaml');
    await h.db.pool.query(
      `create table e5_env (id bigint primary key, title text, body text, category text)`,
    );
    writeFileSync(file, stringify({ pipelines: [itemsPipeline('e5_env', e5(undefined))] }));

    const without = await cliApply(file, { OPENAI_BASE_URL: '' });
    assert.equal(without.code, 1, without.stderr);
    assert.match(without.stderr, /OPENAI_BASE_URL in the environment/);
    assert.equal(await catalogHas('e5_env'), false);

    const withEnv = await cliApply(file, { OPENAI_BASE_URL: `${h.mock.url}/v1` });
    assert.equal(withEnv.code, 0, withEnv.stderr);
    assert.match(withEnv.stdout, /^e5_env: created/m);
    assert.equal(await catalogHas('e5_env'), true);
    assert.ok(h.mock.requests.some((r) => r.model === MODEL && r.inputs[0] === 'passage: probe'));
    assert.doesNotMatch(withEnv.stdout + withEnv.stderr, new RegExp(KEY));
  });

  it('the input limit refuses chunks longer than it, and a column pipeline cuts its text to it', async () => {
    const server = `${h.mock.url}/v1`;
    const tooBig = await applyNew(
      itemsPipeline('e5_big', e5(server), { chunking: { size: 2000, overlap: 200 } }),
    );
    assert.ok(tooBig, 'the pipeline was applied');
    assert.equal(tooBig.field, 'pipelines[0].chunking.size');
    // 512 tokens, less "passage: " (9) and the 4 the server adds: 499 characters.
    assert.match(
      tooBig.detail,
      /^is 2000 characters, but multilingual-e5-small takes at most 499 characters per input \(maxInputTokens 512/,
    );

    // A limit of 80 tokens: 67 characters of text after the prefix and the server's tokens.
    const cut = itemsPipeline('e5_cut', e5(server, { maxInputTokens: 80 }), {
      metadata: [],
      chunking: { size: 64, overlap: 0 },
      destination: { column: 'embedding', truncate: true },
    });
    assert.equal(await applyNew(cut), undefined);
    const long = 'Insulated boots for snow and ice, with a felt lining and a rubber sole. '.repeat(
      8,
    );
    const pk = await insert('e5_cut', 'Boots', long);
    await waitFor(
      'the cut row',
      async () =>
        (
          await h.db.pool.query(`select 1 from e5_cut where id = $1 and embedding is not null`, [
            pk,
          ])
        ).rowCount === 1,
      60_000,
    );
    const sent = h.mock.requests.filter((r) => r.status === 200).flatMap((r) => r.inputs);
    const text = sent.find((t) => t.includes('Insulated'));
    assert.ok(text, 'the row was sent');
    assert.ok(text.startsWith('passage: Title: Boots'), text);
    assert.equal(Array.from(text).length, 'passage: '.length + 67);
    assert.ok(
      h.mock.requests.every((r) => r.status !== 413),
      'nothing the server refused',
    );
  });

  it('a backfill whose vectors have the wrong dimensions fails saying so, and status does not claim it is backfilling', async () => {
    h.mock.inject({ kind: 'wrong-dimensions' }, Infinity);
    // Paused, so that only the backfill meets the row.
    await setSyncPaused(h.db.pool, 'e5', true);
    try {
      await insert('e5', 'Stove', 'Folding camp stove');
      const handle = await startBackfill(h.client, await getPipeline(h.db.pool, 'e5'), {
        taskQueue: h.taskQueue,
        instanceId: await instanceId(h.db.pool),
        rows: 0,
      });
      const err = await handle.result().then(
        () => assert.fail('the backfill completed'),
        (e: unknown) => e,
      );
      assert.equal(
        failureMessage(err),
        `openai/${MODEL} returned 383-dimension vectors, but the pipeline stores 384 (embedding.dimensions): declare dimensions: 383, apply, and re-embed`,
      );
      const target = {
        address: 'test',
        namespace: 'default',
        base: 'http://localhost:8233',
        client: h.client,
      };
      const [status] = (await gatherStatus(h.db.pool, target, 'e5')).pipelines;
      assert.equal(status?.state, 'active');
      assert.equal(status?.walkMissing, undefined);
      assert.ok(
        status?.stuck.some((b) => b.errorClass === 'DimensionMismatchError'),
        'status shows what failed',
      );

      // A backfill that never recorded its end (its workflow terminated): the catalog still says
      // backfilling, and status says what is true instead.
      await changeState(h.db.pool, 'e5', { name: 'backfillStarted' }, { required: true });
      const [claimed] = (await gatherStatus(h.db.pool, target, 'e5')).pipelines;
      assert.equal(claimed?.walkMissing, true);
      assert.match(
        stateWords(claimed ?? { pipeline: 'e5', state: '' }),
        /^backfilling per the catalog, but no backfill is running: .*npx embedsync backfill --table e5/,
      );
      await changeState(h.db.pool, 'e5', { name: 'backfillFinished' }, { required: true });
    } finally {
      h.mock.reset();
      await setSyncPaused(h.db.pool, 'e5', false);
    }
  });
});
