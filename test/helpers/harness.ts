// A running embedsync for one test file: its own database and task queue, a real worker on the real
// Temporal dev server, a poller, and a provider that counts what it is asked to embed.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { applyPipelines } from '../../src/capture/apply.js';
import { instanceId } from '../../src/db/catalog.js';
import { readEnv, type Env } from '../../src/config/env.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import { createLogger, type Logger } from '../../src/log.js';
import { Poller, type PollerOptions } from '../../src/poller/poller.js';
import { OfflineProvider } from '../../src/providers/offline.js';
import type { ProviderRateLimit } from '../../src/config/env.js';
import type { EmbeddingProvider, EmbedRequest, EmbedResponse } from '../../src/providers/types.js';
import { connectClient } from '../../src/temporal/connect.js';
import { ensureSearchAttributes } from '../../src/temporal/search-attributes.js';
import { connectWorker } from '../../src/worker/connect.js';
import { createWorker, type EmbedsyncWorker } from '../../src/worker/worker.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { Teardown } from './teardown.js';
import { terminateRunning } from './temporal.js';

/** The offline provider, counting requests and texts so tests can prove what was (not) paid for. */
export class CountingProvider implements EmbeddingProvider {
  readonly name = 'offline';
  readonly maxInputsPerRequest = 256;
  /** A limit as the environment would declare it; read by a worker when it starts. */
  rateLimit: ProviderRateLimit | undefined;
  requests = 0;
  texts = 0;
  /** Tokens the provider reported. */
  tokens = 0;
  readonly seen: string[] = [];
  private readonly inner = new OfflineProvider();

  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    this.requests += 1;
    this.texts += request.texts.length;
    this.seen.push(...request.texts);
    const response = await this.inner.embed(request);
    this.tokens += response.tokens;
    return response;
  }

  reset(): void {
    this.requests = 0;
    this.texts = 0;
    this.tokens = 0;
    this.seen.length = 0;
  }
}

export interface Harness {
  db: TestDatabase;
  /** The database's installation id, for starting backfills and re-embeds. */
  instanceId: string;
  taskQueue: string;
  client: Client;
  provider: CountingProvider;
  log: Logger;
  pollers: Poller[];
  /** The running worker (after startWorker). */
  worker(): EmbedsyncWorker;
  /** The worker's connection: a client on it may have the server start workflows eagerly here. */
  workerConnection(): NativeConnection;
  startPoller(options?: Partial<PollerOptions>): Poller;
  stopWorker(): Promise<void>;
  startWorker(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * What every harness starts with: a database and a task queue of this file's own, and a Temporal
 * client in a namespace with embedsync's search attributes; each registered with `teardown`.
 */
export async function openTestSession(
  label: string,
  env: Env,
  teardown: Teardown,
): Promise<{ db: TestDatabase; taskQueue: string; client: Client }> {
  const db = await createTestDatabase(label);
  teardown.add(() => db.drop());
  const taskQueue = `test-${label}-${randomBytes(3).toString('hex')}`;
  const { client, connection } = await connectClient(env);
  teardown.add(() => connection.close());
  await ensureSearchAttributes(connection, env.temporalNamespace);
  return { db, taskQueue, client };
}

/**
 * temporalMetrics: have the Temporal SDK export its metrics (once per process, so per test file).
 */
export async function startHarness(
  label: string,
  opts: {
    pollers?: number;
    temporalMetrics?: boolean;
    /** Providers the worker serves besides the counting offline one (OpenAI against a mock, …). */
    providers?: EmbeddingProvider[];
  } = {},
): Promise<Harness> {
  const env = readEnv();
  const log = createLogger({ logLevel: env.logLevel, logFormat: 'json' }, `test-${label}`);
  const teardown = new Teardown();
  return teardown.guard(async () => {
    const { db, taskQueue, client } = await openTestSession(label, env, teardown);
    const provider = new CountingProvider();
    let workerConnection: NativeConnection | undefined;
    let worker: EmbedsyncWorker | undefined;
    let running: Promise<void> | undefined;

    const harness: Harness = {
      db,
      instanceId: await instanceId(db.pool),
      taskQueue,
      client,
      provider,
      log,
      pollers: [],
      worker() {
        if (!worker) throw new Error('the worker is not running');
        return worker;
      },
      workerConnection() {
        if (!workerConnection) throw new Error('the worker has not connected');
        return workerConnection;
      },
      startPoller(options = {}) {
        const poller = new Poller(
          { pool: db.pool, databaseUrl: db.url, temporal: client, taskQueue, log },
          options,
        );
        poller.start();
        harness.pollers.push(poller);
        return poller;
      },
      async startWorker() {
        workerConnection ??= await connectWorker(env, log, {
          metrics: opts.temporalMetrics ?? false,
        });
        worker = await createWorker({
          connection: workerConnection,
          namespace: env.temporalNamespace,
          taskQueue,
          pool: db.pool,
          providers: new Map([
            [provider.name, provider],
            ...(opts.providers ?? []).map((p) => [p.name, p] as const),
          ]),
          log,
          cacheDir: path.join(os.tmpdir(), 'embedsync-test-cache'),
        });
        running = worker.run();
      },
      async stopWorker() {
        worker?.shutdown();
        await running;
        worker = undefined;
        running = undefined;
      },
      // Pollers, the workflows left running, the worker, the connections, the database: all of
      // them, whichever fails.
      stop: () => teardown.run(),
    };
    teardown.add(() => workerConnection?.close());
    teardown.add(() => harness.stopWorker());
    teardown.add(() => terminateRunning(client, taskQueue));
    teardown.add(() => Promise.all(harness.pollers.map((p) => p.stop())));
    await harness.startWorker();
    for (let i = 0; i < (opts.pollers ?? 1); i += 1) harness.startPoller();
    return harness;
  });
}

/**
 * Workflow ids such as backfill:<pipeline> are unique per namespace, which every test file shares:
 * pipelines whose workflows are started by name get a name of their own.
 */
export const uniqueName = (base: string): string => `${base}_${randomBytes(3).toString('hex')}`;

export const PRODUCTS_TABLE = `
  create table products (
    id          bigint generated by default as identity primary key,
    name        text,
    description text,
    category    text,
    price       numeric(10, 2),
    in_stock    boolean not null default true,
    notes       text
  )`;

/**
 * Named products (category outdoor), then `filler` plain ones (category bulk) after them: the rows a
 * search's candidates are drawn from. Returns each named row's key, as search returns it, to its name.
 */
export async function insertProducts(
  h: Pick<Harness, 'db'>,
  products: readonly [name: string, description: string][],
  filler: number,
): Promise<Map<string, string>> {
  const nameOf = new Map<string, string>();
  for (const [name, description] of products) {
    const { rows } = await h.db.pool.query<{ id: string }>(
      "insert into products (name, description, category, price) values ($1, $2, 'outdoor', 10) returning id::text",
      [name, description],
    );
    nameOf.set(rows[0]?.id ?? '', name);
  }
  await h.db.pool.query(
    `insert into products (name, description, category, price)
     select 'Item ' || g, 'Description of item ' || g, 'bulk', 1 from generate_series(1, $1::int) g`,
    [filler],
  );
  return nameOf;
}

/** A products-style pipeline; override any field. */
export function productsPipeline(overrides: Partial<PipelineInput> = {}): PipelineInput {
  return {
    name: 'products',
    source: { table: 'public.products' },
    embed: { columns: [{ column: 'name', prefix: 'Product: ' }, 'description'] },
    metadata: ['category', 'price', 'in_stock'],
    embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 64 },
    chunking: { size: 400, overlap: 40 },
    ...overrides,
  };
}

export async function applyPipeline(
  h: Pick<Harness, 'db'>,
  ...pipelines: PipelineInput[]
): Promise<void> {
  await applyPipelines(h.db.pool, parsePipelines({ pipelines }));
}
