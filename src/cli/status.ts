// npx embedsync status: where each pipeline stands — the database's facts and Temporal's running
// workflows.
import { Command } from 'commander';
import { resolveAnyPipeline } from '../db/catalog.js';
import { isHeld } from '../db/pipeline-state.js';
import {
  gatherStatus,
  oneLine,
  stateWords,
  type PipelineStatus,
  type StatusReport,
  type StuckBatchStatus,
  type TemporalTarget,
} from '../status/index.js';
import { runMain } from './common.js';
import {
  connectTemporal,
  openDatabase,
  temporalAddress,
  temporalUiUrl,
  type TemporalSession,
} from './connections.js';
import type { PartCounts } from '../db/batch-parts.js';
import type { PeriodSpend } from '../cost/spend.js';
import type { UpkeepScheduleStatus } from '../temporal/schedules.js';
import { count, duration, money, percent, plural, progressText } from './format.js';

const opts = new Command('embedsync status')
  .usage('[--table <pipeline>] [--json]')
  .description(
    'Show each pipeline: state, sync paused or not, rows in sync, backfill progress, outbox backlog, dead letters, tokens paid and their estimated cost, whether its provider is answering, and its running workflows.',
  )
  .option(
    '-t, --table <pipeline>',
    'only this pipeline (a pipeline name, or a source table one pipeline syncs)',
  )
  .option('--json', 'print the facts as JSON')
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync status
  npx embedsync status --table products --json | jq .

The database facts are also a view: select * from embedsync.pipeline_status;
Tokens paid per day and mode: select * from embedsync.token_ledger;
If Temporal cannot be reached, the database facts are printed all the same and the command exits 1.`,
  )
  .parse()
  .opts<{ table?: string; json?: boolean }>();

runMain(async (env) => {
  const pool = await openDatabase(env, 'embedsync-status');
  let session: TemporalSession | undefined;
  try {
    const pipeline =
      opts.table === undefined ? undefined : (await resolveAnyPipeline(pool, opts.table)).name;
    const target: TemporalTarget = {
      address: temporalAddress(env),
      namespace: env.temporalNamespace,
      base: temporalUiUrl(env),
      client: undefined,
    };
    try {
      session = await connectTemporal(env);
      target.client = session.client;
    } catch (err) {
      target.error = (err as Error).message;
    }
    const report = await gatherStatus(pool, target, pipeline);
    if (opts.json) console.log(JSON.stringify(report, null, 2));
    else print(report);
    if (!report.temporal.reachable) {
      const why = report.temporal.error ?? 'unreachable';
      process.stderr.write(
        `embedsync: Temporal was unreachable, so workflows and backfill progress are missing: ${why}\n`,
      );
      process.exitCode = 1;
    }
  } finally {
    await session?.close();
    await pool.end();
  }
});

function print(report: StatusReport): void {
  if (report.pipelines.length === 0) {
    console.log(
      'no pipelines yet: apply a pipeline file with `npx embedsync apply --config <file>`',
    );
    return;
  }
  console.log(report.pipelines.map((p) => describe(p, report.temporal.reachable)).join('\n\n'));
}

// Fewer failures in a row are retries going their normal way (a 429, a blip).
const FAILING_AFTER = 3;

function providerHealth(p: PipelineStatus): string {
  const ago = (at: Date) => `${duration((Date.now() - at.getTime()) / 1000)} ago`;
  const success = p.providerLastSuccessAt
    ? `last success ${ago(p.providerLastSuccessAt)}`
    : 'no success yet';
  // Wrong dimensions, bad credentials, …: the batch failed for good (dead letters), nothing is
  // retrying.
  const notRetried = p.providerLastErrorRetryable === false ? 'failed, not retried: ' : '';
  const last = `${notRetried}${p.providerLastError ?? '?'}`;
  if (p.providerFailuresInARow >= FAILING_AFTER && p.providerLastErrorAt) {
    const times = `${count(p.providerFailuresInARow)} requests in a row, the last ${ago(p.providerLastErrorAt)}`;
    return `FAILING: ${times} (${success}): ${last}`;
  }
  if (p.providerFailuresInARow > 0 && notRetried) {
    const failed = plural(p.providerFailuresInARow, 'request');
    return `${failed} failed since the last success, not retried: ${p.providerLastError ?? '?'}`;
  }
  if (p.providerFailuresInARow > 0) {
    return `retrying: ${plural(p.providerFailuresInARow, 'failed request')} since the last success: ${last}`;
  }
  return p.providerLastSuccessAt ? `answering (${success})` : 'no requests yet';
}

function rateLimits(p: PipelineStatus): string {
  const limits = [
    ...(p.requestsPerMinute === null ? [] : [`${count(p.requestsPerMinute)} requests/min`]),
    ...(p.tokensPerMinute === null ? [] : [`${count(p.tokensPerMinute)} tokens/min`]),
  ];
  if (p.provider === 'offline') return 'none (offline provider)';
  // The workers' environment (EMBEDSYNC_<PROVIDER>_REQUESTS_PER_MINUTE, …) may set stricter ones.
  return limits.length > 0
    ? `${limits.join(', ')}, shared by every worker (select * from embedsync.rate_buckets)`
    : 'none declared by the pipeline';
}

/** What the provider itself reported, which pacing follows too (the strictest limit applies). */
function learnedLimits(p: PipelineStatus): string | undefined {
  const l = p.learnedRateLimits;
  if (!l) return undefined;
  const limits = [
    ...(l.requestsPerMinute === null ? [] : [`${count(l.requestsPerMinute)} requests/min`]),
    ...(l.tokensPerMinute === null ? [] : [`${count(l.tokensPerMinute)} tokens/min`]),
  ];
  const said = limits.length > 0 ? limits.join(', ') : 'no limits reported';
  const limited = l.rateLimited > 0 ? `, ${count(l.rateLimited)} answered 429` : '';
  return `${said}; counts ${l.tokenRatio.toFixed(2)}× embedsync's token estimate (${plural(l.answers, 'answer')}${limited}; select * from embedsync.rate_observations)`;
}

/** How a stuck batch reads: where, how often, since when, why, and its workflow in the Web UI. */
function stuckBatchLines(b: StuckBatchStatus): string[] {
  const since = duration((Date.now() - b.since.getTime()) / 1000);
  const how = b.retryable
    ? `${plural(b.attempts, 'attempt')} failed in a row, retrying since ${since} ago`
    : `failed, not retried (${plural(b.attempts, 'attempt')}), ${since} ago`;
  return [`at ${b.stage}: ${how}: ${b.errorClass}: ${oneLine(b.lastError)}`, `  ${b.url}`];
}

/** The stuck part of a pipeline's status: a headline word and one entry per stuck batch. */
function stuckSection(p: PipelineStatus): { headline: string; lines: string[] } {
  if (p.stuck.length === 0) return { headline: '', lines: [] };
  const stages = [...new Set(p.stuck.map((b) => b.stage))].join(', ');
  const query = `select * from embedsync.stuck_batches where pipeline = '${p.pipeline}'`;
  const lines = [`${plural(p.stuck.length, 'batch', 'batches')} (${query})`];
  for (const b of p.stuck) lines.push(...stuckBatchLines(b));
  return { headline: `  STUCK at ${stages}`, lines };
}

function syncing(p: PipelineStatus): string {
  if (p.syncPaused)
    return `sync PAUSED (changes wait in the outbox; npx embedsync resume --table ${p.pipeline})`;
  if (!isHeld(p.state)) return 'sync running';
  const since = p.stateSince
    ? ` for ${duration((Date.now() - p.stateSince.getTime()) / 1000)}`
    : '';
  return `sync HELD${since} (changes wait in the outbox until the source table or the config is fixed)`;
}

/** Rows whose vectors match their content, whoever wrote them (countSyncedRows). */
function syncedText(p: PipelineStatus): string {
  const { rows, of } = p.synced;
  if (of === null) return `${plural(rows, 'row')} (the source table cannot be read)`;
  const pct = percent(rows, of);
  const share = pct ? ` (${pct})` : '';
  return `${count(rows)} of ${plural(of, 'row')}${share}: vectors with no change or dead letter waiting`;
}

function spendText(s: PeriodSpend): string {
  const unpriced = s.unpricedTokens
    ? ` + ${plural(s.unpricedTokens, 'token')} of an unknown price (declare embedding.price)`
    : '';
  const modes = Object.entries(s.byMode).map(([mode, m]) => `${mode} ${count(m.tokens)}`);
  // By mode only where there is more than one to tell apart.
  const byMode = modes.length > 1 ? `: ${modes.join(', ')}` : '';
  return `${plural(s.tokens, 'token')}, ${money(s.cost)}${unpriced}${byMode}`;
}

/** Tokens paid and their estimated cost: today, the last 30 days, in all (the token ledger). */
function spendRows(p: PipelineStatus): [string, string][] {
  const { today, last30Days, total } = p.spend;
  if (total.tokens === 0 && total.reused === 0) return [['tokens paid', 'none yet']];
  const rows: [string, string][] = [
    ['tokens today', spendText(today)],
    ['last 30 days', spendText(last30Days)],
    ['tokens total', spendText(total)],
  ];
  if (total.reused > 0) rows.push(['texts reused', `${count(total.reused)} (not paid again)`]);
  return rows;
}

function describe(p: PipelineStatus, reachable: boolean): string {
  const stuck = stuckSection(p);
  const to = p.eventsOnly ? p.eventsOnly.sinks.join(', ') : p.destination;
  const lines = [`${p.pipeline}  (${p.sourceTable} → ${to})${stuck.headline}`];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(13)} ${text}`);
  row('state', `${stateWords(p)}, ${syncing(p)}`);
  if (p.stateReason) row('why', p.stateReason);
  row('capture', captureText(p.capture));
  if (p.eventsOnly) return eventsOnlyRows(p, row, lines, reachable);
  row('model', `${p.provider}/${p.model}, ${p.dimensions} dims, generation ${p.generation}`);
  row('synced', syncedText(p));
  if (p.hidden !== undefined)
    row(
      'hidden',
      p.hidden === null
        ? 'every row, until the TRUNCATE is synced (onContentChange: clear)'
        : `${plural(p.hidden, 'row')} whose content changed, until re-embedded (onContentChange: clear)`,
    );
  if (p.totalRows !== null) {
    const last = p.lastSyncedAt
      ? `, last checkpoint ${duration((Date.now() - p.lastSyncedAt.getTime()) / 1000)} ago`
      : '';
    const walked = `${count(p.syncedRows)} of ${count(p.totalRows)} rows (${percent(p.syncedRows, p.totalRows) || '0%'})`;
    row('last walk', `${walked}${last}`);
  }
  outboxRow(p, row);
  row(
    'dead letters',
    p.deadLetters
      ? `${count(p.deadLetters)} (select * from embedsync.dead_letters where pipeline = '${p.pipeline}')`
      : '0',
  );
  undeliveredRow(p, row);
  for (const [label, period] of spendRows(p)) row(label, period);
  if (p.batchParts) row('batch parts', batchPartsText(p.batchParts));
  row('provider', providerHealth(p));
  stuck.lines.forEach((text, i) => row(i === 0 ? 'stuck' : '', i === 0 ? text : `  ${text}`));
  row('rate limits', rateLimits(p));
  const learned = learnedLimits(p);
  if (learned) row('provider says', learned);
  const w = p.workflows;
  if (!w) {
    row('workflows', reachable ? '?' : '(Temporal unreachable)');
    return lines.join('\n');
  }
  row('workflows', `${count(w.running)} running; all of them: ${w.listUrl}`);
  for (const x of w.listed) lines.push(`  ${''.padEnd(13)}   ${x.workflowId}  ${x.url}`);
  if (w.running > w.listed.length)
    lines.push(`  ${''.padEnd(13)}   … and ${count(w.running - w.listed.length)} more`);
  for (const u of w.upkeep) row('upkeep', upkeepText(u));
  if (w.backfill) {
    row(
      'backfill',
      w.backfill.progress
        ? progressText(p.pipeline, w.backfill.progress, p.totalRows ?? 0)
        : 'running; no worker answered its progress query (is `npx embedsync worker` running?)',
    );
  }
  return lines.join('\n');
}

function captureText(c: PipelineStatus['capture']): string {
  if (c.mode === 'trigger') return 'triggers';
  if (c.error) return `logical: ERROR ${c.error}`;
  const lag = c.lagBytes === null ? '?' : bytes(c.lagBytes);
  return `logical (slot ${c.slot ?? '?'}, ${lag} of WAL behind, wal_status ${c.walStatus ?? '?'})`;
}

const bytes = (n: number): string =>
  n < 1024
    ? `${n} B`
    : n < 1 << 20
      ? `${(n / 1024).toFixed(1)} KiB`
      : `${(n / (1 << 20)).toFixed(1)} MiB`;

function outboxRow(p: PipelineStatus, row: (label: string, text: string) => void): void {
  const oldest =
    p.oldestChangeSeconds === null ? '' : `, oldest waiting ${duration(p.oldestChangeSeconds)}`;
  row('outbox', `${plural(p.outboxBacklog, 'change')} waiting${oldest}`);
}

function undeliveredRow(p: PipelineStatus, row: (label: string, text: string) => void): void {
  if (p.failedDeliveries.count > 0)
    row(
      'undelivered',
      `${plural(p.failedDeliveries.count, 'delivery', 'deliveries')} refused by a sink, last: ${oneLine(p.failedDeliveries.lastError ?? '')} (npx embedsync redeliver --table ${p.pipeline})`,
    );
}

/** An events-only pipeline (decision 23): what waits, what a sink refused, what runs. */
function eventsOnlyRows(
  p: PipelineStatus,
  row: (label: string, text: string) => void,
  lines: string[],
  reachable: boolean,
): string {
  row('embeds', 'nothing: every change goes to its sinks');
  outboxRow(p, row);
  undeliveredRow(p, row);
  const stuck = stuckSection(p);
  stuck.lines.forEach((text, i) => row(i === 0 ? 'stuck' : '', i === 0 ? text : `  ${text}`));
  const w = p.workflows;
  if (!w) row('workflows', reachable ? '?' : '(Temporal unreachable)');
  else row('workflows', `${count(w.running)} running; all of them: ${w.listUrl}`);
  return lines.join('\n');
}

/** The latest batch-mode backfill's parts, as the database has them (Temporal not needed). */
function batchPartsText(c: PartCounts): string {
  const ended = [
    ...(c.failed ? [`${count(c.failed)} failed`] : []),
    ...(c.cancelled ? [`${count(c.cancelled)} cancelled`] : []),
  ];
  const lines = `${count(c.completedLines)} lines done, ${count(c.failedLines)} refused`;
  return `${plural(c.submitted, 'part')} submitted, ${count(c.inProgress)} in progress, ${count(c.completed)} completed${ended.length ? `, ${ended.join(', ')}` : ''} (${lines}; ${count(c.paidTokens)} tokens at the batch price)`;
}

/** "verify:products every 6 h 00 min; last run 2 h 10 min ago: 1 missing, 0 stale, 0 orphaned (1 requeued)". */
function upkeepText(u: UpkeepScheduleStatus): string {
  const every = u.everySeconds === null ? '' : ` every ${duration(u.everySeconds)}`;
  const paused = u.paused ? ` (paused${u.note ? `: ${u.note}` : ''})` : '';
  const run = u.lastRun;
  if (!run) return `${u.id}${every}${paused}; no run yet`;
  const ago = `last run ${duration((Date.now() - run.startedAt.getTime()) / 1000)} ago`;
  const r = run.result;
  let found = run.status.toLowerCase();
  if (r?.verify) {
    const v = r.verify;
    const requeued = v.requeued === undefined ? '' : ` (${count(v.requeued)} requeued)`;
    found = `${count(v.missing)} missing, ${count(v.stale)} stale, ${count(v.orphaned)} orphaned${requeued}`;
  } else if (r?.reindex) {
    found = `${r.reindex.action}, ${count(r.reindex.bytesBefore)} → ${count(r.reindex.bytesAfter)} bytes`;
  }
  return `${u.id}${every}${paused}; ${ago}: ${found}`;
}
