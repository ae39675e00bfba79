// npx embedsync pause / resume: stop and restart a pipeline's embedding work without losing a
// change. Pausing sets sync_paused, so pollers leave the pipeline's outbox rows where they are
// (they accumulate), and signals its running backfill to hold before its next page.
import { Command } from 'commander';
import type { Env } from '../config/env.js';
import {
  isEventsPipeline,
  resolveAnyPipeline,
  setSyncPaused,
  type AnyPipeline,
} from '../db/catalog.js';
import type { Pool } from '../db/pool.js';
import { queryProgress, readPipelineFacts, runningBackfill } from '../status/index.js';
import { webUiWorkflowUrl } from '../temporal/names.js';
import { pauseSignal, resumeSignal } from '../../workflows/definitions.js';
import { runMain, UserError } from './common.js';
import {
  connectTemporal,
  openDatabase,
  temporalUiUrl,
  TemporalUnreachableError,
  type TemporalSession,
} from './connections.js';
import { count, plural } from './format.js';

type Action = 'pause' | 'resume';

const program = new Command('embedsync').description(
  'Pause or resume a pipeline: its change sync and its running backfill.',
);

for (const action of ['pause', 'resume'] as const) {
  program
    .command(action)
    .usage('--table <pipeline>')
    .description(
      action === 'pause'
        ? 'Pause a pipeline: pollers leave its captured changes in the outbox (nothing is lost) and its running backfill holds before its next page.'
        : 'Resume a paused pipeline: the changes that waited in the outbox are synced, and a paused backfill carries on from its checkpoint.',
    )
    .requiredOption(
      '-t, --table <pipeline>',
      'a pipeline name, or a source table one pipeline syncs',
    )
    .addHelpText('after', `\nExample:\n  npx embedsync ${action} --table products`)
    .action((opts: { table: string }) => runMain((env) => control(env, action, opts.table)));
}

program.parse();

async function control(env: Env, action: Action, table: string): Promise<void> {
  const pool = await openDatabase(env, `embedsync-${action}`);
  let temporal: TemporalSession | Error | undefined;
  try {
    const p = await resolveAnyPipeline(pool, table);
    temporal = await connectTemporal(env).catch((err: Error) => err);
    const handle =
      temporal instanceof Error || isEventsPipeline(p)
        ? undefined
        : await runningBackfill(temporal.client, p.name, p.pendingGeneration);
    const progress =
      handle && !(temporal instanceof Error) ? await queryProgress(temporal.client, handle) : null;
    if (action === 'resume' && !p.syncPaused) {
      if (temporal instanceof Error) throw temporal;
      if (!handle)
        throw new UserError(
          `${p.name} is not paused and has no backfill running: nothing to resume`,
        );
      if (progress && !progress.paused)
        throw new UserError(
          `${p.name} is not paused: its sync and its backfill are both running; nothing to resume`,
        );
    }
    // The database switch comes first: with Temporal down nothing runs anyway, and a pause must
    // hold once it is back.
    const changed = await setSyncPaused(pool, p.name, action === 'pause');
    console.log(await syncLine(pool, p, action, changed));
    if (temporal instanceof Error) {
      throw new TemporalUnreachableError(
        `${temporal.message}; a running backfill was not signalled: run this again once Temporal can be reached`,
      );
    }
    if (!handle) {
      // An events-only pipeline never has one.
      if (!isEventsPipeline(p)) console.log('  backfill: none running');
      return;
    }
    await handle.signal(action === 'pause' ? pauseSignal : resumeSignal);
    const where = progress
      ? ` at ${count(progress.processed)} of ${count(progress.total ?? 0)} rows`
      : '';
    const url = webUiWorkflowUrl(temporalUiUrl(env), env.temporalNamespace, handle.workflowId);
    const what =
      action === 'resume'
        ? `signalled to resume${where}`
        : progress?.paused
          ? `was already paused${where}`
          : `signalled to pause${where}; it holds before its next page`;
    console.log(`  backfill: ${handle.workflowId} ${what}  ${url}`);
  } finally {
    if (temporal && !(temporal instanceof Error)) await temporal.close();
    await pool.end();
  }
}

async function syncLine(
  pool: Pool,
  p: AnyPipeline,
  action: Action,
  changed: boolean,
): Promise<string> {
  const [facts] = await readPipelineFacts(pool, p.name);
  const waiting = plural(facts?.outboxBacklog ?? 0, 'change');
  if (action === 'pause') {
    return changed
      ? `${p.name}: sync paused; captured changes now wait in the outbox (${waiting} so far). npx embedsync resume --table ${p.name} carries on.`
      : `${p.name}: sync was already paused (${waiting} waiting in the outbox).`;
  }
  if (!changed) return `${p.name}: sync was not paused.`;
  return facts?.outboxBacklog
    ? `${p.name}: sync resumed; ${waiting} waited in the outbox, syncing now.`
    : `${p.name}: sync resumed (no change was waiting).`;
}
