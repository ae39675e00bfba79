// A running embedsync whose providers are the real OpenAI and Bedrock clients, talking to the mock
// provider server: its own database and task queue, one or more workers (started after the
// pipelines are applied, so the embedding queues are paced from the first request), a poller, and
// captured logs.
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import {
  ActivityFailure,
  ApplicationFailure,
  WorkflowFailedError,
  type Client,
} from '@temporalio/client';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { applyPipelines } from '../../src/capture/apply.js';
import { readEnv, readProviderEnv } from '../../src/config/env.js';
import { parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import {
  startMockProvider,
  type MockProvider,
  type MockProviderOptions,
} from '../../src/mock-provider/server.js';
import { Poller, type PollerOptions } from '../../src/poller/poller.js';
import { createProviders } from '../../src/providers/index.js';
import { connectWorker } from '../../src/worker/connect.js';
import { createWorker, type EmbedsyncWorker } from '../../src/worker/worker.js';
import type { TestDatabase } from '../helpers/db.js';
import { openTestSession } from '../helpers/harness.js';
import { Teardown } from '../helpers/teardown.js';
import { terminateRunning } from '../helpers/temporal.js';

export interface ProviderHarness {
  db: TestDatabase;
  mock: MockProvider;
  client: Client;
  taskQueue: string;
  /** Every log line the worker and poller wrote (JSON). */
  logLines: string[];
  /** What the workers counted (src/metrics/worker.ts), one registry each. */
  metrics: Registry[];
  stop(): Promise<void>;
}

/** An items-shaped table per pipeline, so one pipeline's requests never mix with another's. */
const itemsTable = (table: string): string =>
  `create table ${table} (id bigint primary key, title text, body text, category text)`;

/**
 * A pipeline over the items-shaped table of the same name; the mock answers for every model in the
 * table.
 */
export function itemsPipeline(
  name: string,
  embedding: PipelineInput['embedding'],
  overrides: Partial<PipelineInput> = {},
): PipelineInput {
  return {
    name,
    source: { table: `public.${name}` },
    embed: { columns: [{ column: 'title', prefix: 'Title: ' }, 'body'] },
    metadata: ['category'],
    embedding,
    chunking: { size: 200, overlap: 20 },
    ...overrides,
  };
}

function captureLogger(label: string, lines: string[]): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  // The same redaction as src/log.ts: the point is to prove nothing secret reaches it in the first
  // place.
  return pino(
    {
      name: `test-${label}`,
      level: 'trace',
      redact: {
        paths: ['apiKey', 'authorization', '*.apiKey', '*.authorization'],
        censor: '[redacted]',
      },
    },
    sink,
  );
}

export async function startProviderHarness(
  label: string,
  opts: {
    pipelines: (mockUrl: string) => PipelineInput[];
    mock?: MockProviderOptions;
    env?: Record<string, string>;
    /** Worker processes' worth of workers on the task queue (default 1). */
    workers?: number;
    rateRefreshMs?: number;
    poller?: Partial<PollerOptions>;
  },
): Promise<ProviderHarness> {
  const env = readEnv();
  const logLines: string[] = [];
  const log = captureLogger(label, logLines);
  const teardown = new Teardown();
  return teardown.guard(async () => {
    const mock = await startMockProvider(opts.mock ?? {});
    teardown.add(() => mock.close());
    const { db, taskQueue, client } = await openTestSession(label, env, teardown);
    const pipelines = parsePipelines({ pipelines: opts.pipelines(mock.url) });
    for (const p of pipelines) await db.pool.query(itemsTable(p.name));
    await applyPipelines(db.pool, pipelines);

    const providerEnv = readProviderEnv({
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: mock.url,
      ...opts.env,
    });
    // A connection each, as separate worker processes have.
    const workers: EmbedsyncWorker[] = [];
    for (let i = 0; i < (opts.workers ?? 1); i++) {
      const connection = await connectWorker(env, log);
      teardown.add(() => connection.close());
      workers.push(
        await createWorker({
          connection,
          namespace: env.temporalNamespace,
          taskQueue,
          pool: db.pool,
          providers: createProviders([], providerEnv),
          log,
          cacheDir: path.join(os.tmpdir(), 'embedsync-test-cache'),
          ...(opts.rateRefreshMs === undefined ? {} : { rateRefreshMs: opts.rateRefreshMs }),
        }),
      );
    }
    const running = Promise.all(workers.map((w) => w.run()));
    teardown.add(async () => {
      for (const w of workers) w.shutdown();
      await running;
    });
    teardown.add(() => terminateRunning(client, taskQueue));
    const poller = new Poller(
      { pool: db.pool, databaseUrl: db.url, temporal: client, taskQueue, log },
      opts.poller,
    );
    poller.start();
    teardown.add(() => poller.stop());

    return {
      db,
      mock,
      client,
      taskQueue,
      logLines,
      metrics: workers.map((w) => w.metrics.registry),
      stop: () => teardown.run(),
    };
  });
}

/**
 * Workflow ids on this harness's task queue, optionally only those with a given status. The status
 * is each execution's own (describe), not visibility's: a server busy with other work updates
 * visibility's status of a closed workflow late, and a wait on it timed out once.
 */
export async function workflowIds(
  h: Pick<ProviderHarness, 'client' | 'taskQueue'>,
  status?: 'Completed' | 'Failed' | 'Running',
): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of h.client.workflow.list({ query: `TaskQueue = "${h.taskQueue}"` }))
    ids.push(wf.workflowId);
  if (!status) return ids;
  const statuses = await Promise.all(
    ids.map(async (id) => (await h.client.workflow.getHandle(id).describe()).status.name),
  );
  return ids.filter((_, i) => statuses[i] === status.toUpperCase());
}

/**
 * What the workflows on this harness's task queue are doing, read from each execution (not from
 * visibility): for a wait's failure message, so a hang says where it hangs.
 */
export async function workflowStates(
  h: Pick<ProviderHarness, 'client' | 'taskQueue'>,
): Promise<string> {
  const lines: string[] = [];
  for (const id of await workflowIds(h)) {
    const d = await h.client.workflow.getHandle(id).describe();
    const pending = (d.raw.pendingActivities ?? []).map(
      (a) =>
        `${a.activityType?.name ?? '?'} attempt ${a.attempt ?? 0} state ${String(a.state)}` +
        (a.lastFailure?.message ? ` last failure: ${a.lastFailure.message}` : ''),
    );
    lines.push(`${id}: ${d.status.name}${pending.length ? ` (${pending.join('; ')})` : ''}`);
  }
  return lines.join('\n');
}

/** The chunks stored for a row of a pipeline (its vector table is <name>_embeddings). */
export async function chunksOf(
  h: Pick<ProviderHarness, 'db'>,
  pipeline: string,
  pk: string,
): Promise<{ chunk: string; dims: number }[]> {
  const { rows } = await h.db.pool.query<{ chunk: string; dims: number }>(
    `select chunk, vector_dims(embedding) as dims from ${pipeline}_embeddings where pk = $1 order by chunk_index`,
    [pk],
  );
  return rows;
}

/**
 * Sets the process environment for the test file (the providers read keys and AWS credentials from
 * it).
 */
export function setEnv(values: Record<string, string>): void {
  Object.assign(process.env, values);
}

/**
 * How a failed workflow's activity failed: its ApplicationFailure (type, message, nonRetryable).
 */
export async function activityFailure(
  h: Pick<ProviderHarness, 'client'>,
  workflowId: string,
): Promise<ApplicationFailure | undefined> {
  const err = await h.client.workflow
    .getHandle(workflowId)
    .result()
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  if (
    err instanceof WorkflowFailedError &&
    err.cause instanceof ActivityFailure &&
    err.cause.cause instanceof ApplicationFailure
  )
    return err.cause.cause;
  return undefined;
}

/**
 * Captures what is printed to the console from now on (the SDKs print on their own), for the
 * secrets scan; the lines still reach the console.
 */
export function captureConsole(): string[] {
  const lines: string[] = [];
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      lines.push(
        args.map((a) => (typeof a === 'string' ? a : (JSON.stringify(a) ?? String(a)))).join(' '),
      );
      original(...args);
    };
  }
  return lines;
}

/** Every string in a history, payload bytes decoded: the failure messages, inputs and results. */
export function historyText(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) historyText(v, out);
  else if (value && typeof value === 'object')
    for (const v of Object.values(value)) historyText(v, out);
  return out;
}

/**
 * Where an API key must never appear: every workflow's history on the harness's task queue, the
 * worker and poller logs, the console lines captured, and the catalog's configs.
 */
export async function secretPlaces(
  h: ProviderHarness,
  consoleLines: readonly string[],
): Promise<{ ids: string[]; histories: string[]; places: [string, string][] }> {
  const ids = await workflowIds(h);
  const histories = await Promise.all(
    ids.map(async (id) =>
      historyText(await h.client.workflow.getHandle(id).fetchHistory()).join('\n'),
    ),
  );
  const { rows } = await h.db.pool.query<{ config: string }>(
    'select config::text from embedsync.pipelines',
  );
  const places: [string, string][] = [
    ...histories.map((text, i): [string, string] => [`history of ${ids[i] ?? ''}`, text]),
    ['worker and poller logs', h.logLines.join('\n')],
    ['console', consoleLines.join('\n')],
    ['catalog', rows.map((r) => r.config).join('\n')],
  ];
  return { ids, histories, places };
}
