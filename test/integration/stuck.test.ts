// A stage that fails on every attempt shows where operators look: status (text and JSON), the SQL
// views, verify --requeue, and the worker's log line of each failed attempt, with the error's
// message and class.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBackfill } from '../../src/backfill/start.js';
import { readEnv } from '../../src/config/env.js';
import { getPipeline } from '../../src/db/catalog.js';
import { createLogger } from '../../src/log.js';
import type { EmbedRequest } from '../../src/providers/types.js';
import { gatherStatus, type PipelineStatus } from '../../src/status/index.js';
import { temporalAddress } from '../../src/temporal/connect.js';
import { installTemporalRuntime } from '../../src/worker/runtime.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
const root = path.resolve(import.meta.dirname, '../..');
const UI = 'http://localhost:8233';
// Every write of the stuck pipeline breaks it, as a constraint added to the vector table by hand
// would.
const CONSTRAINT = 'no_vectors_allowed';
const WRONG_DIMENSIONS = 'WRONG-DIMENSIONS';

// The SDK's log lines ("Activity failed") as the worker writes them, captured before any worker
// starts.
const logLines: string[] = [];
await installTemporalRuntime(
  createLogger({ logLevel: 'warn', logFormat: 'json' }, 'test-stuck', {
    write: (line: string) => void logLines.push(line),
  }),
);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node --import tsx src/cli/<command>.ts …` against this file's database and task queue. */
function cli(command: string, args: string[]): Promise<Run> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join('src/cli', `${command}.ts`), ...args],
    {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: h.db.url,
        EMBEDSYNC_TASK_QUEUE: h.taskQueue,
        TEMPORAL_UI_URL: UI,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    }),
  );
}

async function status(pipeline: string): Promise<PipelineStatus> {
  const env = readEnv();
  const target = {
    address: temporalAddress(env),
    namespace: env.temporalNamespace,
    base: UI,
    client: h.client,
  };
  const report = await gatherStatus(h.db.pool, target, pipeline);
  const p = report.pipelines[0];
  assert.ok(p, `status of ${pipeline}`);
  return p;
}

async function viewRow(
  pipeline: string,
): Promise<{ stuck_batches: number; stuck_since: Date | null }> {
  const { rows } = await h.db.pool.query<{ stuck_batches: number; stuck_since: Date | null }>(
    'select stuck_batches, stuck_since from embedsync.pipeline_status where pipeline = $1',
    [pipeline],
  );
  assert.ok(rows[0]);
  return rows[0];
}

async function chunkCount(pipeline: string): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(
    `select count(*)::int as n from public.${pipeline}_embeddings`,
  );
  return rows[0]?.n ?? -1;
}

/** What status --json prints of a pipeline's stuck batches. */
interface Shown {
  stuck: { stage: string; attempts: number; url: string }[];
}

interface LogLine {
  msg: string;
  activityType?: string;
  error?: { type?: string; message?: string };
}

describe('stuck batches', () => {
  before(async () => {
    h = await startHarness('stuck');
    await h.db.pool.query(PRODUCTS_TABLE);
    await h.db.pool.query('create table gadgets (like products including all)');
  });
  after(async () => h.stop());

  it('a write that fails on every attempt shows as stuck, with its error and workflow, until it is fixed', async () => {
    const pipeline = uniqueName('stuck');
    await applyPipeline(h, productsPipeline({ name: pipeline }));
    const vectors = `public.${pipeline}_embeddings`;
    await h.db.pool.query(
      `alter table ${vectors} add constraint ${CONSTRAINT} check (chunk_index < 0)`,
    );
    try {
      const { rows } = await h.db.pool.query<{ id: string }>(
        `insert into products (name, description) values ('Lantern', 'Storm lantern') returning id::text`,
      );
      const key = rows[0]?.id ?? '';

      const stuck = await waitFor(
        'the batch to be stuck at write',
        async () => {
          const [b] = (await status(pipeline)).stuck;
          return b && b.attempts >= 3 ? b : undefined;
        },
        60_000,
        200,
      );
      assert.equal(stuck.stage, 'write');
      assert.equal(stuck.retryable, true);
      assert.match(stuck.lastError, new RegExp(`violates check constraint "${CONSTRAINT}"`));
      assert.match(stuck.errorClass, /^DatabaseError/);
      assert.match(stuck.url, /^http:\/\/localhost:8233\/namespaces\/[^/]+\/workflows\/sync%3A/);
      assert.ok(stuck.since.getTime() <= Date.now());
      const view = await viewRow(pipeline);
      assert.ok(view.stuck_batches >= 1, `stuck_batches ${view.stuck_batches}`);
      assert.ok(view.stuck_since);

      const json = JSON.parse((await cli('status', ['--table', pipeline, '--json'])).stdout) as {
        pipelines: Shown[];
      };
      const shown = json.pipelines[0]?.stuck[0];
      assert.equal(shown?.stage, 'write');
      assert.ok((shown?.attempts ?? 0) >= 3);
      assert.match(shown?.url ?? '', /\/workflows\/sync%3A/);
      const text = await cli('status', ['--table', pipeline]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`^${pipeline} .*STUCK at write`, 'm'));
      assert.match(text.stdout, /stuck +1 batch/);
      assert.match(
        text.stdout,
        new RegExp(`at write: \\d+ attempts failed in a row, retrying since .*${CONSTRAINT}`),
      );
      assert.match(
        text.stdout,
        /^ +http:\/\/localhost:8233\/namespaces\/[^/]+\/workflows\/sync%3A/m,
      );

      const verify = await cli('verify', ['--table', pipeline, '--requeue']);
      assert.equal(verify.code, 1, verify.stderr);
      assert.match(
        verify.stdout,
        new RegExp(
          `1 of these keys was in batches stuck at write: .*${CONSTRAINT}.*; they will fail again until that is fixed`,
        ),
      );

      // Every failed attempt was logged with its message and class, not as "error":{}.
      const failed = logLines
        .map((l) => JSON.parse(l) as LogLine)
        .filter((l) => l.msg === 'Activity failed' && l.activityType === 'writeBatch');
      assert.ok(failed.length >= 3, `${failed.length} failed attempts logged`);
      assert.equal(failed[0]?.error?.type, 'DatabaseError');
      assert.match(failed[0]?.error?.message ?? '', new RegExp(CONSTRAINT));

      await h.db.pool.query(`alter table ${vectors} drop constraint ${CONSTRAINT}`);
      await waitFor(
        'the batch to be written',
        async () => (await chunkCount(pipeline)) > 0,
        60_000,
        200,
      );
      await waitFor(
        'the stuck entry to go',
        async () => (await status(pipeline)).stuck.length === 0,
        60_000,
        200,
      );
      assert.equal((await viewRow(pipeline)).stuck_batches, 0);
      const { rows: left } = await h.db.pool.query(
        'select * from embedsync.batch_failures where pipeline = $1',
        [pipeline],
      );
      assert.deepEqual(left, []);
      assert.equal(
        (await h.db.pool.query(`select 1 from ${vectors} where pk = $1`, [key])).rowCount,
        1,
      );
    } finally {
      await h.db.pool.query(`alter table ${vectors} drop constraint if exists ${CONSTRAINT}`);
    }
  });

  it('a stuck batch whose workflow is gone does not show as stuck, nor does a record left unrefreshed', async () => {
    const pipeline = uniqueName('left');
    await applyPipeline(h, productsPipeline({ name: pipeline }));
    const vectors = `public.${pipeline}_embeddings`;
    await h.db.pool.query(
      `alter table ${vectors} add constraint ${CONSTRAINT} check (chunk_index < 0)`,
    );
    try {
      await h.db.pool.query(
        `insert into products (name, description) values ('Compass', 'Brass compass')`,
      );
      const stuck = await waitFor(
        'the batch to be stuck',
        async () => (await status(pipeline)).stuck[0],
        60_000,
        200,
      );
      // Terminated, its record would wait forever for a success: status asks Temporal and drops it.
      await h.client.workflow
        .getHandle(stuck.workflowId)
        .terminate('the test gives up on this batch');
      // An attempt in flight at the termination may still land its record: the next status drops it
      // too.
      await waitFor(
        'status to drop the leftover',
        async () =>
          (await status(pipeline)).stuck.length === 0 &&
          (await viewRow(pipeline)).stuck_batches === 0,
      );

      // Without Temporal to ask, SQL lets a record expire once no attempt has refreshed it for long
      // enough.
      await h.db.pool.query(
        `insert into embedsync.batch_failures (pipeline, batch_id, stage, workflow_id, attempts, error_class, last_error,
           retryable, first_failed_at, last_failed_at)
         values ($1, 'sync:gone', 'write', 'sync:gone', 5, 'DatabaseError', 'lost', true,
           now() - interval '1 hour', now() - embedsync.batch_failure_expiry() - interval '1 second')`,
        [pipeline],
      );
      assert.equal((await viewRow(pipeline)).stuck_batches, 0);
    } finally {
      await h.db.pool.query(`alter table ${vectors} drop constraint if exists ${CONSTRAINT}`);
    }
  });

  it('a wrong-dimensions failure, which is not retried, is never described as retrying', async () => {
    const pipeline = uniqueName('dims');
    await applyPipeline(
      h,
      productsPipeline({ name: pipeline, source: { table: 'public.gadgets' } }),
    );
    const embed = h.provider.embed.bind(h.provider);
    // A provider that answers with vectors one dimension short for the marked texts.
    h.provider.embed = async (request: EmbedRequest) => {
      const response = await embed(request);
      if (!request.texts.some((t) => t.includes(WRONG_DIMENSIONS))) return response;
      return { ...response, vectors: response.vectors.map((v) => v.slice(1)) };
    };
    try {
      await h.db.pool.query(`insert into gadgets (name, description) values ('Widget', $1)`, [
        `Has ${WRONG_DIMENSIONS}`,
      ]);
      // A sync batch dead-letters its keys; a backfill fails for good in its walk batch (read,
      // chunk, embed, write in one activity) and stays stuck there.
      await waitFor(
        'the dead letter',
        async () =>
          ((
            await h.db.pool.query('select 1 from embedsync.dead_letters where pipeline = $1', [
              pipeline,
            ])
          ).rowCount ?? 0) > 0,
      );
      const handle = await startBackfill(h.client, await getPipeline(h.db.pool, pipeline), {
        taskQueue: h.taskQueue,
        instanceId: h.instanceId,
        rows: 0,
      });
      await assert.rejects(handle.result());
      const p = await status(pipeline);
      assert.equal(p.providerLastErrorRetryable, false);
      assert.ok(p.providerFailuresInARow >= 1);
      const [stuck] = p.stuck;
      assert.equal(stuck?.stage, 'walk batch');
      assert.equal(stuck?.retryable, false);
      assert.equal(stuck?.errorClass, 'DimensionMismatchError');

      const text = await cli('status', ['--table', pipeline]);
      assert.equal(text.code, 0, text.stderr);
      assert.doesNotMatch(text.stdout, /retrying/i);
      assert.match(text.stdout, /^ +provider .*not retried.*DimensionMismatchError/m);
      assert.match(
        text.stdout,
        /at walk batch: failed, not retried \(1 attempt\).*DimensionMismatchError/,
      );
    } finally {
      h.provider.embed = embed;
    }
  });
});
