// The operator commands as a user runs them: separate processes with only environment variables to
// go on, checked by their output, their exit codes and what they did to the database and to
// Temporal.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { verifyPipeline } from '../../src/verify/verify.js';
import { progressQuery } from '../../workflows/definitions.js';
import type { backfill } from '../../workflows/index.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
// Workflow ids and search attributes live in a namespace other test files share: a name of our own.
const pipeline = `cli_${randomBytes(3).toString('hex')}`;
const neighbour = `${pipeline}_other`;
const ROWS = 300;
const root = path.resolve(import.meta.dirname, '../..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Commands still running, killed when the file ends: a failed test must not leave one behind. */
const children = new Set<ChildProcess>();

/**
 * Starts `embedsync <command> …` (bin/embedsync.js) against this file's database and task queue.
 */
function start(command: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['bin/embedsync.js', command, ...args], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: h.db.url, EMBEDSYNC_TASK_QUEUE: h.taskQueue, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, ...out });
    }),
  );
  return { child, out, done };
}

const cli = (command: string, args: string[], env?: Record<string, string>): Promise<Run> =>
  start(command, args, env).done;

function assertOneLineError(r: Run, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

const json = <T>(r: Run): T => JSON.parse(r.stdout) as T;
const sql = async <T>(text: string, params: unknown[] = []): Promise<T[]> =>
  (await h.db.pool.query(text, params)).rows as T[];
const outboxSize = async (): Promise<number> =>
  (await sql<{ n: number }>('select count(*)::int as n from embedsync.outbox'))[0]?.n ?? -1;
const syncPaused = async (): Promise<boolean> =>
  (
    await sql<{ p: boolean }>('select sync_paused as p from embedsync.pipelines where name = $1', [
      pipeline,
    ])
  )[0]?.p ?? false;
const backfillHandle = () => h.client.workflow.getHandle<typeof backfill>(`backfill:${pipeline}`);

async function converged(name: string): Promise<void> {
  await waitFor(
    `${name} to converge`,
    async () => {
      if ((await outboxSize()) > 0) return false;
      const r = await verifyPipeline(h.db.pool, name);
      return r.missing.length + r.stale.length + r.orphaned.length === 0;
    },
    60_000,
  );
}

describe('operator commands', () => {
  before(async () => {
    h = await startHarness('cli');
    await h.db.pool.query(PRODUCTS_TABLE);
    // Rows that exist before the pipeline: only a backfill embeds them.
    await h.db.pool.query(
      `insert into products (name, description, category, price) select 'Item ' || g, 'Description of item ' || g, 'c' || (g % 5), g from generate_series(1, $1) g`,
      [ROWS],
    );
    await h.db.pool.query(
      'create table articles (id int primary key, name text, description text, category text, price numeric, in_stock boolean)',
    );
    await applyPipeline(
      h,
      productsPipeline({ name: pipeline }),
      productsPipeline({ name: neighbour, source: { table: 'public.articles' } }),
    );
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await h.stop();
  });

  it('--help explains every command and exits 0', async () => {
    const runs = await Promise.all([
      cli('backfill', ['--help']),
      cli('pause', ['--help']),
      cli('resume', ['--help']),
      cli('status', ['--help']),
      cli('verify', ['--help']),
    ]);
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /^Usage: embedsync (backfill|pause|resume|verify) --table <pipeline>|^Usage: embedsync status \[--table/,
      );
      assert.match(r.stdout, /--table|--json/);
    }
    assert.match(runs[0]?.stdout ?? '', /--detach/);
    assert.match(runs[4]?.stdout ?? '', /--requeue/);
  });

  it('an unknown table is one line on stderr and exit code 1, for every command', async () => {
    const runs = await Promise.all([
      cli('backfill', ['--table', 'nonesuch']),
      cli('pause', ['--table', 'nonesuch']),
      cli('resume', ['--table', 'nonesuch']),
      cli('status', ['--table', 'nonesuch']),
      cli('verify', ['--table', 'nonesuch']),
    ]);
    for (const r of runs) assertOneLineError(r, /^embedsync: no pipeline named "nonesuch"/);
  });

  it('--batch on a pipeline whose provider has no Batch API is one line naming both', async () => {
    assertOneLineError(
      await cli('backfill', ['--table', 'products', '--batch']),
      /^embedsync: \S+ embeds with offline: batch mode needs OpenAI's Batch API/,
    );
  });

  it('a backfill of a small table completes and prints a one-line summary', async () => {
    const r = await cli('backfill', ['--table', 'products']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      !r.stdout.includes('\u001b['),
      'no terminal control sequences when stdout is not a terminal',
    );
    assert.match(
      r.stdout,
      new RegExp(`^${pipeline}: backfill started for 300 rows of public.products$`, 'm'),
    );
    // Timed by the workflow's running time; never paused, so no pause is mentioned.
    const done = `^${pipeline}: backfill done: 300 rows in (?:\\d+ min )?[\\d.]+ s of running \\([\\d,.]+ rows/s\\), [\\d,]+ tokens`;
    assert.match(r.stdout, new RegExp(`${done}; vectors in public.${pipeline}_embeddings$`, 'm'));
    const [n] = await sql<{ n: number }>(
      `select count(distinct pk)::int as n from public.${pipeline}_embeddings`,
    );
    assert.equal(n?.n, ROWS);
    const report = await verifyPipeline(h.db.pool, pipeline);
    assert.deepEqual([report.missing, report.stale, report.orphaned], [[], [], []]);
  });

  it('Ctrl-C while watching stops the watching, not the backfill', async () => {
    await h.stopWorker(); // so the backfill cannot finish while we watch
    try {
      const run = start('backfill', ['--table', 'products']);
      await waitFor(
        'the backfill to start',
        () => Promise.resolve(run.out.stdout.includes('backfill started')),
        30_000,
      );
      // The command catches Ctrl-C before it prints that line, however soon the signal follows it.
      run.child.kill('SIGINT');
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /stopped watching; the backfill continues in Temporal/);
      assert.match(
        r.stdout,
        new RegExp(`watch again: +npx embedsync backfill --table ${pipeline}`),
      );
      assert.equal((await backfillHandle().describe()).status.name, 'RUNNING');
    } finally {
      await h.startWorker();
    }
    assert.equal((await backfillHandle().result()).processed, ROWS);
  });

  it('--detach returns at once with the id and link; pause and resume reach that backfill, and status shows it', async () => {
    await h.stopWorker(); // the pause signal then arrives before the backfill's first page, every time
    let workerStopped = true;
    try {
      const detached = await cli('backfill', [
        '--table',
        'products',
        '--detach',
        '--batch-size',
        '50',
        '--window',
        '1',
      ]);
      assert.equal(detached.code, 0, detached.stderr);
      assert.match(
        detached.stdout,
        new RegExp(
          `workflow: +backfill:${pipeline} +http://\\S+/namespaces/default/workflows/backfill%3A${pipeline}`,
        ),
      );

      const paused = await cli('pause', ['--table', 'products']);
      assert.equal(paused.code, 0, paused.stderr);
      assert.match(paused.stdout, new RegExp(`^${pipeline}: sync paused`, 'm'));
      assert.match(paused.stdout, new RegExp(`backfill: backfill:${pipeline} signalled to pause`));
      assert.equal(await syncPaused(), true);
      await h.startWorker();
      workerStopped = false;
      await waitFor(
        'the backfill to hold',
        async () => (await backfillHandle().query(progressQuery)).phase === 'paused',
      );

      const status = await waitFor('status to list the backfill', async () => {
        const r = await cli('status', ['--table', 'products', '--json']);
        const s = json<StatusReportJson>(r).pipelines[0];
        return s?.workflows?.listed.some((w) => w.workflowId === `backfill:${pipeline}`)
          ? s
          : false;
      });
      assert.equal(status.syncPaused, true);
      assert.equal(status.workflows?.backfill?.progress?.phase, 'paused');
      assert.equal(
        status.workflows?.backfill?.progress?.processed,
        0,
        'the pause held before the first page',
      );
      assert.match(status.workflows?.backfill?.url ?? '', /\/workflows\/backfill%3Acli_/);

      const resumed = await cli('resume', ['--table', 'products']);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(
        resumed.stdout,
        new RegExp(`backfill: backfill:${pipeline} signalled to resume`),
      );
      assert.equal(await syncPaused(), false);
      const result = await backfillHandle().result();
      assert.equal(result.processed, ROWS);
      assert.ok(
        result.pausedSeconds > 0,
        'the time it held is counted apart from its running time',
      );
    } finally {
      if (workerStopped) await h.startWorker();
    }
  });

  it('a change made while paused waits in the outbox and arrives after resume', async () => {
    const paused = await cli('pause', ['--table', 'products']);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /backfill: none running/);
    const [row] = await sql<{ id: string }>(
      `insert into products (name, description) values ('Paused Lamp', 'Arrives later') returning id::text`,
    );
    const pk = row?.id ?? '';
    await new Promise((r) => setTimeout(r, 2500)); // more than the poller's fallback interval
    assert.equal(await outboxSize(), 1, 'the change waits in the outbox');
    assert.equal(
      (await sql(`select 1 from public.${pipeline}_embeddings where pk = $1`, [pk])).length,
      0,
    );

    const status = json<StatusReportJson>(await cli('status', ['--table', 'products', '--json']))
      .pipelines[0];
    assert.equal(status?.syncPaused, true);
    assert.equal(status?.outboxBacklog, 1);
    assert.ok(
      (status?.oldestChangeSeconds ?? 0) >= 2,
      `oldest change age ${status?.oldestChangeSeconds}`,
    );

    const resumed = await cli('resume', ['--table', 'products']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(
      resumed.stdout,
      new RegExp(`^${pipeline}: sync resumed; 1 change waited in the outbox`, 'm'),
    );
    await waitFor(
      'the change to arrive',
      async () =>
        (await sql(`select 1 from public.${pipeline}_embeddings where pk = $1`, [pk])).length > 0,
    );
    assert.equal(await outboxSize(), 0);

    assertOneLineError(
      await cli('resume', ['--table', 'products']),
      /is not paused and has no backfill running: nothing to resume$/,
    );
  });

  it('status --json shows the pipeline with correct counts, and the text form says the same', async () => {
    await h.db.pool.query(
      `insert into embedsync.dead_letters (pipeline, pk, generation, content_hash, error) values ($1, '42', 1, 'x', 'invalid input')`,
      [pipeline],
    );
    const r = await cli('status', ['--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = json<StatusReportJson>(r);
    assert.equal(report.temporal.reachable, true);
    assert.deepEqual(
      report.pipelines.map((p) => p.pipeline),
      [pipeline, neighbour],
    );
    const s = report.pipelines[0];
    assert.ok(s);
    assert.deepEqual(
      {
        state: s.state,
        syncPaused: s.syncPaused,
        syncedRows: s.syncedRows,
        totalRows: s.totalRows,
        outboxBacklog: s.outboxBacklog,
        deadLetters: s.deadLetters,
        generation: s.generation,
        model: s.model,
      },
      {
        state: 'active',
        syncPaused: false,
        syncedRows: ROWS,
        totalRows: ROWS,
        outboxBacklog: 0,
        deadLetters: 1,
        generation: 1,
        model: 'feature-hash-v1',
      },
    );
    assert.equal(s.oldestChangeSeconds, null);
    assert.ok(s.tokensUsed > 0);
    assert.equal(s.workflows?.backfill, null, 'no backfill is running');
    assert.match(s.workflows?.listUrl ?? '', /workflows\?query=EmbedPipeline%20%3D%20%22cli_/);

    // 301 rows (one added by change sync), one of them dead-lettered: 300 in sync.
    assert.deepEqual(s.synced, { rows: ROWS, of: ROWS + 1 });
    assert.ok(s.spend.today.tokens >= s.tokensUsed, 'the ledger counts sync as well as walks');
    assert.deepEqual(Object.keys(s.spend.total.byMode).sort(), ['backfill', 'sync']);
    assert.equal(s.spend.today.cost, 0, 'the offline model is free');

    const text = await cli('status', ['--table', pipeline]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /synced +300 of 301 rows \(99%\): vectors with no change/);
    assert.match(text.stdout, /last walk +300 of 300 rows \(100%\)/);
    assert.match(text.stdout, /tokens today +[\d,]+ tokens, \$0: backfill [\d,]+, sync [\d,]+/);
    assert.doesNotMatch(text.stdout, /tokens used/);
    assert.match(text.stdout, /dead letters +1 /);
    assert.match(text.stdout, /provider +answering \(last success/);
    assert.match(text.stdout, /rate limits +none \(offline provider\)/);
    await h.db.pool.query('delete from embedsync.dead_letters where pipeline = $1', [pipeline]);
  });

  it('a pipeline synced by change sync alone shows its rows synced and its tokens; its dry run starts nothing', async () => {
    await h.db.pool.query(
      `insert into articles (id, name, description) values (201, 'Lamp', 'A desk lamp'), (202, 'Chair', 'An oak chair'), (203, 'Desk', 'A standing desk')`,
    );
    await waitFor(
      'the articles to sync',
      async () =>
        (await sql(`select distinct pk from public.${neighbour}_embeddings`)).length === 3 &&
        (await outboxSize()) === 0,
    );
    const r = await cli('status', ['--table', neighbour, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = json<StatusReportJson>(r).pipelines[0];
    assert.ok(s);
    assert.equal(s.totalRows, null, 'no walk has run');
    assert.deepEqual(s.synced, { rows: 3, of: 3 });
    const { rows } = await h.db.pool.query<{ tokens: number }>(
      `select tokens_today::bigint as tokens from embedsync.pipeline_status where pipeline = $1`,
      [neighbour],
    );
    assert.ok((rows[0]?.tokens ?? 0) > 0);
    assert.equal(s.spend.today.tokens, rows[0]?.tokens);
    assert.deepEqual(Object.keys(s.spend.today.byMode), ['sync']);
    const text = await cli('status', ['--table', neighbour]);
    assert.match(text.stdout, /synced +3 of 3 rows \(100%\)/);
    assert.doesNotMatch(text.stdout, /last walk|no backfill yet/);

    const dry = await cli('backfill', ['--table', neighbour, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /nothing was started and nothing sent/);
    assert.match(dry.stdout, /rows +3 rows in public\.articles; 0 to embed \(3 already match/);
    assert.match(dry.stdout, /tokens +0, estimated/);
    // Paused, so the change waits for the walk the dry run describes.
    assert.equal((await cli('pause', ['--table', neighbour])).code, 0);
    await h.db.pool.query(`update articles set description = 'A tall oak chair' where id = 202`);
    const asJson = await cli('backfill', ['--table', neighbour, '--dry-run', '--json']);
    assert.equal(asJson.code, 0, asJson.stderr);
    const e = json<{ rows: number; rowsToEmbed: number; tokensEstimated: boolean }>(asJson);
    assert.deepEqual(
      { rows: e.rows, rowsToEmbed: e.rowsToEmbed, estimated: e.tokensEstimated },
      { rows: 3, rowsToEmbed: 1, estimated: true },
    );
    const started = await h.client.workflow
      .getHandle(`backfill:${neighbour}`)
      .describe()
      .then(
        () => true,
        () => false,
      );
    assert.equal(started, false, 'no backfill was started');
    assert.equal((await cli('resume', ['--table', neighbour])).code, 0);
  });

  it("verify exits 1 after vectors are changed behind embedsync's back, and 0 once --requeue has been processed", async () => {
    const vectors = `public.${pipeline}_embeddings`;
    await h.db.pool.query(`delete from ${vectors} where pk in ('1', '2', '3')`);
    await h.db.pool.query(
      `insert into ${vectors} (pk, chunk_index, embedding, chunk, metadata, content_hash, generation)
       select '999999', chunk_index, embedding, chunk, metadata, content_hash, generation from ${vectors} where pk = '10'`,
    );
    // A write made while the triggers were off: the case --requeue is for.
    await h.db.pool.query('alter table products disable trigger user');
    await h.db.pool.query(
      `update products set description = 'Changed while nobody watched' where id = 20`,
    );
    await h.db.pool.query('alter table products enable trigger user');
    // A chunk damaged in place: its row's content hash still matches, so only a forced re-embed
    // repairs it.
    await h.db.pool.query(`update ${vectors} set chunk = 'damaged' where pk = '30'`);

    const before = await cli('verify', ['--table', 'products', '--json']);
    assert.equal(before.code, 1, before.stderr);
    const r = json<VerifyJson>(before);
    assert.equal(r.inStep, false);
    assert.deepEqual(
      [r.missing, r.stale, r.orphaned],
      [
        { count: 3, examples: ['1', '2', '3'] },
        { count: 2, examples: ['20', '30'] },
        { count: 1, examples: ['999999'] },
      ],
    );

    const text = await cli('verify', ['--table', 'products', '--requeue']);
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /missing +3 .* e\.g\. 1, 2, 3/);
    assert.match(text.stdout, /Queued 6 changes for the sync/);
    await converged(pipeline);
    const afterwards = await cli('verify', ['--table', 'products']);
    assert.equal(afterwards.code, 0, afterwards.stdout + afterwards.stderr);
    assert.match(afterwards.stdout, new RegExp(`^${pipeline}: in step\\.$`, 'm'));
  });

  it("the Web UI can filter by EmbedPipeline: the query returns that pipeline's backfill and syncs, and only those", async () => {
    await h.db.pool.query(
      `insert into articles values (1, 'Neighbour', 'Belongs to the other pipeline', 'x', 1, true)`,
    );
    await converged(neighbour);
    const ids = async (name: string) => {
      const out: string[] = [];
      for await (const w of h.client.workflow.list({ query: `EmbedPipeline = "${name}"` }))
        out.push(w.workflowId);
      return out;
    };
    const mine = await waitFor('the syncs to be visible', async () => {
      const found = await ids(pipeline);
      return found.some((id) => id.startsWith(`sync:${pipeline}:`)) ? found : false;
    });
    assert.ok(mine.includes(`backfill:${pipeline}`), 'the backfill is listed');
    for (const id of mine)
      assert.match(id, new RegExp(`^(backfill:${pipeline}|sync:${pipeline}:.+)$`));
    const theirs = await waitFor('the neighbour to be visible', async () => {
      const found = await ids(neighbour);
      return found.length > 0 ? found : false;
    });
    for (const id of theirs) assert.match(id, new RegExp(`^sync:${neighbour}:`));
  });

  it('with Temporal unreachable, status still prints the database facts and backfill says so in one line', async () => {
    const away = { TEMPORAL_ADDRESS: '127.0.0.1:1' };
    const [status, backfillRun] = await Promise.all([
      cli('status', ['--json'], away),
      cli('backfill', ['--table', 'products'], away),
    ]);
    assert.equal(status.code, 1);
    const report = json<StatusReportJson>(status);
    assert.equal(report.temporal.reachable, false);
    assert.equal(report.pipelines[0]?.syncedRows, ROWS);
    assert.match(status.stderr, /Temporal was unreachable/);
    assertOneLineError(
      backfillRun,
      /^embedsync: cannot reach Temporal at 127\.0\.0\.1:1 \(TEMPORAL_ADDRESS\)/,
    );
  });

  it('a changed model is applied as pending, and reembed swaps it in; a second reembed has nothing to do', async () => {
    await h.db.pool.query(
      `insert into articles values (101, 'Tent', 'Two-person tent', 'outdoor', 200, true), (102, 'Stove', 'Camp stove', 'outdoor', 60, true)`,
    );
    await converged(neighbour);
    const file = path.join(os.tmpdir(), `${neighbour}.yaml`);
    const changed = productsPipeline({
      name: neighbour,
      source: { table: 'public.articles' },
      embedding: { provider: 'offline', dimensions: 48 },
    });
    writeFileSync(file, stringify({ pipelines: [changed] }));
    const applied = await cli('apply', ['--config', file]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, new RegExp(`${neighbour}: reembed pending`));
    assert.match(applied.stdout, new RegExp(`npx embedsync reembed --table ${neighbour}`));
    const dry = await cli('reembed', ['--table', neighbour, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const e = json<{ kind: string; generation: number; rows: number; rowsToEmbed: number }>(dry);
    assert.deepEqual(
      { kind: e.kind, generation: e.generation, toEmbed: e.rowsToEmbed },
      { kind: 'reembed', generation: 2, toEmbed: 6 },
    );
    assert.equal(e.rows, 6, 'every row, at the new config');
    const run = await cli('reembed', ['--table', neighbour]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /generation 2 is live: \d+ rows/);
    const [dims] = await sql<{ d: number[] }>(
      `select array_agg(distinct vector_dims(embedding)) as d from ${neighbour}_embeddings`,
    );
    assert.deepEqual(dims?.d, [48]);
    assertOneLineError(
      await cli('reembed', ['--table', neighbour]),
      /has no pending config change to re-embed/,
    );
  });

  it('embedsync --help lists every command; an unknown command is one line and exit code 1', async () => {
    const [help, unknown] = await Promise.all([
      cli('--help', []),
      cli('nonesuch', ['--table', 'products']),
    ]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: embedsync <command> \[options\]/);
    const commands = [...help.stdout.matchAll(/^ {2}([a-z-]+) {2,}\S/gm)].map((m) => m[1]);
    assert.deepEqual(commands, [
      'apply',
      'pipelines',
      'remove',
      'backfill',
      'reembed',
      'pause',
      'resume',
      'status',
      'verify',
      'reindex',
      'redeliver',
      'search',
      'worker',
      'poller',
      'migrate',
      'dev',
      'model',
      'stack',
      'mock-provider',
    ]);
    assertOneLineError(
      unknown,
      /^embedsync: unknown command "nonesuch"; the commands are: apply, pipelines, /,
    );
  });

  it('npx embedsync status --json, from the repository, prints JSON and nothing else', async () => {
    // --no: never fetch a package of that name; the project's own bin is the one meant.
    const child = spawn('npx', ['--no', 'embedsync', 'status', '--json'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: h.db.url, EMBEDSYNC_TASK_QUEUE: h.taskQueue },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    children.delete(child);
    assert.equal(code, 0, stderr);
    const report = JSON.parse(stdout) as StatusReportJson;
    assert.equal(report.temporal.reachable, true);
    assert.ok(
      report.pipelines.some((p) => p.pipeline === pipeline),
      stdout,
    );
  });

  it('an events-only pipeline: apply, pipelines and status say where its changes go; embedding commands refuse it in one line', async () => {
    const orders = `${pipeline}_orders`;
    await h.db.pool.query(`create table ${orders} (id int primary key, total numeric)`);
    const file = path.join(os.tmpdir(), `${orders}.yaml`);
    writeFileSync(
      file,
      stringify({
        pipelines: [
          { name: orders, source: { table: `public.${orders}` }, sinks: [{ notify: orders }] },
        ],
      }),
    );
    const applied = await cli('apply', ['--config', file]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout, `${orders}: created (events only, to notify ${orders})\n`);
    const listed = await cli('pipelines', []);
    assert.match(
      listed.stdout,
      new RegExp(`^${orders}\tpublic\\.${orders} → notify ${orders}\tevents only$`, 'm'),
    );
    const status = await cli('status', ['--table', orders]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      new RegExp(`^${orders}  \\(public\\.${orders} → notify ${orders}\\)`, 'm'),
    );
    assert.match(status.stdout, /embeds +nothing: every change goes to its sinks/);
    assert.doesNotMatch(status.stdout, /model|synced/);

    const refused = await Promise.all([
      cli('backfill', ['--table', orders]),
      cli('reembed', ['--table', orders]),
      cli('verify', ['--table', orders]),
      cli('search', ['--table', orders, 'anything']),
      cli('reindex', ['--table', orders]),
    ]);
    for (const r of refused)
      assertOneLineError(
        r,
        new RegExp(`^embedsync: pipeline ${orders} is events-only: it embeds nothing`),
      );

    const paused = await cli('pause', ['--table', orders]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, new RegExp(`^${orders}: sync paused`));
    const removed = await cli('remove', ['--table', orders]);
    assert.equal(removed.stdout, `${orders}: removed (triggers on public.${orders} dropped)\n`);
  });

  it('remove takes --table (a pipeline or its source table) and still --pipeline', async () => {
    const gadgets = `${pipeline}_gadgets`;
    const widgets = `${pipeline}_widgets`;
    await h.db.pool.query(
      'create table gadgets (id int primary key, name text, description text, category text, price numeric, in_stock boolean)',
    );
    await h.db.pool.query('create table widgets (like gadgets including all)');
    await applyPipeline(
      h,
      productsPipeline({ name: gadgets, source: { table: 'public.gadgets' } }),
      productsPipeline({ name: widgets, source: { table: 'public.widgets' } }),
    );
    const exists = async (name: string): Promise<[boolean, boolean]> => {
      const [r] = await sql<{ p: boolean; t: boolean }>(
        'select exists (select 1 from embedsync.pipelines where name = $1) as p, to_regclass($2) is not null as t',
        [name, `public.${name}_embeddings`],
      );
      return [r?.p ?? false, r?.t ?? false];
    };

    assertOneLineError(
      await cli('remove', []),
      /^error: required option '--table <pipeline>' not specified$/,
    );
    const byTable = await cli('remove', ['--table', 'public.gadgets']);
    assert.equal(byTable.code, 0, byTable.stderr);
    const removed = `${gadgets}: removed (triggers on public.gadgets dropped; public.${gadgets}_embeddings kept)\n`;
    assert.equal(byTable.stdout, removed);
    assert.deepEqual(await exists(gadgets), [false, true]);

    const byName = await cli('remove', ['--pipeline', widgets, '--drop-vector-table']);
    assert.equal(byName.code, 0, byName.stderr);
    assert.match(byName.stdout, new RegExp(`^${widgets}: removed .*dropped\\)$`, 'm'));
    assert.deepEqual(await exists(widgets), [false, false]);
    assertOneLineError(
      await cli('remove', ['--table', widgets]),
      new RegExp(`^embedsync: no pipeline named "${widgets}"`),
    );
  });
});

interface StatusReportJson {
  temporal: { reachable: boolean };
  pipelines: StatusJson[];
}

interface StatusJson {
  pipeline: string;
  state: string;
  syncPaused: boolean;
  generation: number;
  model: string;
  syncedRows: number;
  totalRows: number | null;
  tokensUsed: number;
  synced: { rows: number; of: number | null };
  spend: Record<
    'today' | 'last30Days' | 'total',
    { tokens: number; cost: number; byMode: Record<string, { tokens: number; cost: number }> }
  >;
  outboxBacklog: number;
  oldestChangeSeconds: number | null;
  deadLetters: number;
  workflows: {
    listUrl: string;
    listed: { workflowId: string; url: string }[];
    backfill: { url: string; progress: { phase: string; processed: number } | null } | null;
  } | null;
}

interface VerifyJson {
  inStep: boolean;
  missing: { count: number; examples: string[] };
  stale: { count: number; examples: string[] };
  orphaned: { count: number; examples: string[] };
}
