// npm run status: where each pipeline stands — the database's facts and Temporal's running workflows.
import { Command } from 'commander';
import { resolvePipeline } from '../db/catalog.js';
import { gatherStatus, type PipelineStatus, type StatusReport, type TemporalTarget } from '../status/index.js';
import { runMain } from './common.js';
import { connectTemporal, openDatabase, temporalAddress, temporalUiUrl, type TemporalSession } from './connections.js';
import { count, duration, percent, plural, progressText } from './format.js';

const opts = new Command('embedsync status')
  .usage('[--table <pipeline>] [--json]')
  .description('Show each pipeline: state, sync paused or not, backfill progress, outbox backlog, dead letters, tokens, whether its provider is answering, and its running workflows.')
  .option('-t, --table <pipeline>', 'only this pipeline (a pipeline name, or a source table one pipeline syncs)')
  .option('--json', 'print the facts as JSON')
  .addHelpText('after', `
Examples:
  npx embedsync status
  npx embedsync status --table products --json | jq .

The database facts are also a view: select * from embedsync.pipeline_status;
If Temporal cannot be reached, the database facts are printed all the same and the command exits 1.`)
  .parse()
  .opts<{ table?: string; json?: boolean }>();

runMain(async (env) => {
  const pool = await openDatabase(env, 'embedsync-status');
  let session: TemporalSession | undefined;
  try {
    const pipeline = opts.table === undefined ? undefined : (await resolvePipeline(pool, opts.table)).name;
    const target: TemporalTarget = { address: temporalAddress(env), namespace: env.temporalNamespace, base: temporalUiUrl(env), client: undefined };
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
      process.stderr.write(`embedsync: Temporal was unreachable, so workflows and backfill progress are missing: ${why}\n`);
      process.exitCode = 1;
    }
  } finally {
    await session?.close();
    await pool.end();
  }
});

function print(report: StatusReport): void {
  if (report.pipelines.length === 0) {
    console.log('no pipelines yet: apply a pipeline file with `npm run apply -- --config <file>`');
    return;
  }
  console.log(report.pipelines.map((p) => describe(p, report.temporal.reachable)).join('\n\n'));
}

// Fewer failures in a row are retries going their normal way (a 429, a blip).
const FAILING_AFTER = 3;

function providerHealth(p: PipelineStatus): string {
  const ago = (at: Date) => `${duration((Date.now() - at.getTime()) / 1000)} ago`;
  const success = p.providerLastSuccessAt ? `last success ${ago(p.providerLastSuccessAt)}` : 'no success yet';
  if (p.providerFailuresInARow >= FAILING_AFTER && p.providerLastErrorAt) {
    return `FAILING: ${count(p.providerFailuresInARow)} requests in a row, the last ${ago(p.providerLastErrorAt)} (${success}): ${p.providerLastError ?? '?'}`;
  }
  if (p.providerFailuresInARow > 0) return `retrying: ${plural(p.providerFailuresInARow, 'failed request')} since the last success: ${p.providerLastError ?? '?'}`;
  return p.providerLastSuccessAt ? `answering (${success})` : 'no requests yet';
}

function rateLimits(p: PipelineStatus): string {
  const limits = [
    ...(p.requestsPerMinute === null ? [] : [`${count(p.requestsPerMinute)} requests/min`]),
    ...(p.tokensPerMinute === null ? [] : [`${count(p.tokensPerMinute)} tokens/min`]),
  ];
  if (p.provider === 'offline') return 'none (offline provider)';
  // The workers' environment (EMBEDSYNC_<PROVIDER>_REQUESTS_PER_MINUTE, …) may set stricter ones.
  return limits.length > 0 ? `${limits.join(', ')}, shared by every worker (select * from embedsync.rate_buckets)` : 'none declared by the pipeline';
}

function describe(p: PipelineStatus, reachable: boolean): string {
  const lines = [`${p.pipeline}  (${p.sourceTable} → ${p.vectorTable})`];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(13)} ${text}`);
  row('state', `${p.state}, ${p.syncPaused ? `sync PAUSED (changes wait in the outbox; npm run resume -- --table ${p.pipeline})` : 'sync running'}`);
  row('model', `${p.provider}/${p.model}, ${p.dimensions} dims, generation ${p.generation}`);
  const total = p.totalRows === null ? 'no backfill yet' : `${count(p.syncedRows)} of ${count(p.totalRows)} rows (${percent(p.syncedRows, p.totalRows) || '0%'})`;
  const last = p.lastSyncedAt ? `, last checkpoint ${duration((Date.now() - p.lastSyncedAt.getTime()) / 1000)} ago` : '';
  row('synced', `${total}${last}`);
  const oldest = p.oldestChangeSeconds === null ? '' : `, oldest waiting ${duration(p.oldestChangeSeconds)}`;
  row('outbox', `${plural(p.outboxBacklog, 'change')} waiting${oldest}`);
  row('dead letters', p.deadLetters ? `${count(p.deadLetters)} (select * from embedsync.dead_letters where pipeline = '${p.pipeline}')` : '0');
  row('tokens used', count(p.tokensUsed));
  row('provider', providerHealth(p));
  row('rate limits', rateLimits(p));
  const w = p.workflows;
  if (!w) {
    row('workflows', reachable ? '?' : '(Temporal unreachable)');
    return lines.join('\n');
  }
  row('workflows', `${count(w.running)} running; all of them: ${w.listUrl}`);
  for (const x of w.listed) lines.push(`  ${''.padEnd(13)}   ${x.workflowId}  ${x.url}`);
  if (w.running > w.listed.length) lines.push(`  ${''.padEnd(13)}   … and ${count(w.running - w.listed.length)} more`);
  if (w.backfill) {
    row('backfill', w.backfill.progress ? progressText(p.pipeline, w.backfill.progress, p.totalRows ?? 0) : 'running; no worker answered its progress query (is `npm run worker` running?)');
  }
  return lines.join('\n');
}
