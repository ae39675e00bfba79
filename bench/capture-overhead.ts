// Capture overhead: what the pipeline's capture costs the user's own writes. Single-row INSERT and
// UPDATE throughput under pgbench, and one bulk UPDATE, without capture, with the capture triggers,
// and with logical capture (decision 29) with its WAL reader running during the writes.
import { getPipeline, type Pipeline } from '../src/db/catalog.js';
import { ensureCaptureSlot, walLevel } from '../src/db/capture-slot.js';
import type { Pool } from '../src/db/pool.js';
import { createLogger } from '../src/log.js';
import { captureReport, type Sample } from './helpers/capture-report.js';
import {
  captureNotifies,
  MODE_LABEL,
  outboxKeys,
  setCapture,
  settle,
  withNotifyLockWaits,
  withPgRecvlogical,
  withWalReader,
  type CaptureMode,
} from './helpers/capture.js';
import { now } from './helpers/clock.js';
import { applyProductsPipeline } from './helpers/database.js';
import { findPgbench, runPgbench, type PgbenchRun } from './helpers/pgbench.js';
import { round } from './helpers/stats.js';
import type { BenchContext, BenchReport, Benchmark } from './helpers/types.js';

// Many short rounds rather than a few long ones: bursts of outside load then spoil fewer medians.
const DEFAULTS = { duration: 10, clients: 4, rounds: 5, rows: 100_000 };
const TABLE = 'public.products';

const DESCRIPTION =
  'A ripstop nylon daypack made for long days on rocky trails. Built to last, easy to care for, and backed by a two-year warranty.';

/**
 * pgbench scripts: one single-row statement per transaction, touching a column the pipeline embeds.
 */
const scripts = (rows: number): Record<'insert' | 'update', string> => ({
  insert: `\\set n random(1, 1000000000)
insert into ${TABLE} (name, description, category, price) values ('Bench item ' || :n, '${DESCRIPTION}', 'outdoor', 49.90);
`,
  update: `\\set id random(1, ${rows})
\\set n random(1, 1000000000)
update ${TABLE} set description = 'Revision ' || :n || ': ${DESCRIPTION}' where id = :id;
`,
});

export const captureOverhead: Benchmark = {
  name: 'capture-overhead',
  title: 'Capture overhead: the triggers’ cost to the source table’s writes',
  run,
};

type Settings = typeof DEFAULTS;

interface Bench {
  ctx: BenchContext;
  pool: Pool;
  pipeline: Pipeline;
  settings: Settings;
  runs: number;
  checkpointed: boolean;
  /** wal_level = logical: logical capture is measured too. */
  logical: boolean;
}

const readerLog = createLogger({ logLevel: 'warn', logFormat: 'json' }, 'bench-wal-reader');

/** fn, with the WAL reader running when the mode is logical capture; its lag after, if so. */
async function underCapture<T>(
  ctx: BenchContext,
  mode: CaptureMode,
  fn: () => Promise<T>,
): Promise<{
  result: T;
  lagBytes?: number;
  catchUpMs?: number;
  walsenderPct?: number;
  readerPct?: number;
}> {
  if (mode === 'logical-pg') return withPgRecvlogical(ctx.db.pool, ctx.db.url, fn);
  if (mode !== 'logical') return { result: await fn() };
  return withWalReader(ctx.db.pool, ctx.db.url, readerLog, fn);
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const settings = { ...DEFAULTS, ...definedOnly(ctx) };
  const { pool } = ctx.db;
  const pgbench = await findPgbench();
  ctx.log(`loading ${settings.rows} rows`);
  await pool.query(
    `insert into ${TABLE} (name, description, category, price)
     select 'Product ' || g, 'Description ' || g || ': ${DESCRIPTION}', 'outdoor', 10 + g % 300
       from generate_series(1, $1::int) g`,
    [settings.rows],
  );
  await applyProductsPipeline(pool);
  const level = await walLevel(pool);
  const logical = level === 'logical';
  if (logical) await ensureCaptureSlot(pool);
  else ctx.log(`wal_level = ${level}: logical capture is not measured`);
  const b: Bench = {
    ctx,
    pool,
    pipeline: await getPipeline(pool, 'products'),
    settings,
    runs: 0,
    checkpointed: true,
    logical,
  };
  // Single-row transactions also run with the NOTIFY taken out, to show what it alone costs.
  const singleRowModes: CaptureMode[] = [
    'without',
    'with',
    ...(captureNotifies(b.pipeline) ? (['no-notify'] as const) : []),
    ...(logical ? (['logical', 'logical-unread', 'logical-pg'] as const) : []),
  ];

  const pgbenchRuns: Record<string, Array<PgbenchRun & { mode: CaptureMode }>> = {};
  // onContentChange: clear changes only what an UPDATE's capture does.
  const throughput = (workload: 'insert' | 'update'): Promise<Sample[]> =>
    compare(
      b,
      `${workload} tps`,
      workload === 'update' ? [...singleRowModes, 'clear'] : singleRowModes,
      async (mode) => {
        const script = scripts(settings.rows)[workload];
        const {
          result: { result, meanWaiting },
          ...reader
        } = await underCapture(ctx, mode, () =>
          withNotifyLockWaits(pool, () =>
            runPgbench({
              bin: pgbench,
              databaseUrl: ctx.db.url,
              script,
              clients: settings.clients,
              durationS: settings.duration,
            }),
          ),
        );
        (pgbenchRuns[workload] ??= []).push({ ...result, mode });
        return { value: result.tps, notifyLockWaiters: round(meanWaiting, 2), ...reader };
      },
    );

  const insert = await throughput('insert');
  const update = await throughput('update');
  const bulkModes: CaptureMode[] = [
    'without',
    'with',
    'clear',
    ...(logical ? (['logical', 'logical-unread'] as const) : []),
  ];
  const bulk = await compare(b, 'bulk update ms', bulkModes, async (mode) => {
    const { result, ...reader } = await underCapture(ctx, mode, () =>
      bulkUpdate(pool, settings.rows, b.runs),
    );
    return { value: result, ...reader };
  });
  await setCapture(pool, b.pipeline, 'with');
  return captureReport({
    settings,
    insert,
    update,
    bulk,
    checkpointed: b.checkpointed,
    walLevel: level,
    extra: { pgbenchRuns, scripts: scripts(settings.rows) },
  });
}

/**
 * measure() once per mode per round; the order of the modes rotates each round so drift cancels
 * out.
 */
async function compare(
  b: Bench,
  what: string,
  modes: readonly CaptureMode[],
  measure: (mode: CaptureMode) => Promise<{
    value: number;
    notifyLockWaiters?: number;
    lagBytes?: number;
    catchUpMs?: number;
    walsenderPct?: number;
    readerPct?: number;
  }>,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let n = 1; n <= b.settings.rounds; n += 1) {
    const order = modes.map((_, i) => modes[(i + n - 1) % modes.length] as CaptureMode);
    for (const mode of order) {
      await setCapture(b.pool, b.pipeline, mode);
      b.checkpointed = (await settle(b.pool, TABLE)) && b.checkpointed;
      b.runs += 1;
      const { value, notifyLockWaiters, lagBytes, catchUpMs, walsenderPct, readerPct } =
        await measure(mode);
      const enqueued = await outboxKeys(b.pool);
      const lag =
        lagBytes === undefined
          ? ''
          : `, reader ${round(lagBytes / 1024, 0)} KiB behind at the end, caught up in ${round(catchUpMs ?? 0, 0)} ms`;
      const cpu =
        walsenderPct === undefined
          ? ''
          : `, walsender ${walsenderPct} % of a core, reader ${readerPct ?? '?'} %`;
      b.ctx.log(
        `${what}, round ${n}, ${MODE_LABEL[mode]}: ${round(value, 1)} (outbox +${enqueued}${lag}${cpu})`,
      );
      samples.push({
        mode,
        round: n,
        value,
        enqueued,
        ...(notifyLockWaiters === undefined ? {} : { notifyLockWaiters }),
        ...(lagBytes === undefined ? {} : { lagBytes, catchUpMs: catchUpMs ?? 0 }),
        ...(walsenderPct === undefined ? {} : { walsenderPct }),
        ...(readerPct === undefined ? {} : { readerPct }),
      });
    }
  }
  return samples;
}

/**
 * One UPDATE statement over `rows` rows, changing an embedded column of each; its wall time in ms.
 * The text names the run, so no run rewrites what the one before wrote (that would enqueue
 * nothing).
 */
async function bulkUpdate(pool: Pool, rows: number, run: number): Promise<number> {
  const started = now();
  await pool.query(
    `update ${TABLE} set description = 'Revision ' || $1::int || ' of ' || name where id <= $2`,
    [run, rows],
  );
  return now() - started;
}

function definedOnly(ctx: BenchContext): Partial<Settings> {
  const { duration, clients, rounds, rows } = ctx.options;
  const whole = (v: number | undefined): number | undefined =>
    v === undefined ? undefined : Math.max(1, Math.round(v));
  const given = { duration, clients: whole(clients), rounds: whole(rounds), rows: whole(rows) };
  return Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
}
