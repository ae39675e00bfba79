// npx embedsync verify: checks that a pipeline's vectors match its source table row by row (by
// content hash, chunks, generation and metadata), and with --requeue queues the differences for the
// sync to repair.
import { Command } from 'commander';
import { resolvePipeline } from '../db/catalog.js';
import { vectorsPlace } from '../db/destination.js';
import { readPipelineFacts } from '../status/index.js';
import { requeueReport } from '../verify/requeue.js';
import { stuckWarnings, type StuckWarning } from '../verify/stuck.js';
import { verifyPipeline, type VerifyReport } from '../verify/verify.js';
import { runMain } from './common.js';
import { openDatabase } from './connections.js';
import { count, plural } from './format.js';

const EXAMPLES = 10;

const opts = new Command('embedsync verify')
  .usage('--table <pipeline> [--requeue] [--json]')
  .description(
    'Check that every source row has the vectors of its current content, and that no vectors outlive their row. Exits 0 when in step, 1 when not.',
  )
  .requiredOption('-t, --table <pipeline>', 'a pipeline name, or a source table one pipeline syncs')
  .option(
    '--requeue',
    'queue every differing key in the outbox, so the running poller and worker repair it',
  )
  .option('--json', 'print the result as JSON')
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync verify --table products
  npx embedsync verify --table products --requeue   # then run verify again once the queue has drained

It reads the whole source table a page at a time; on a busy table, changes still in flight show up
as differences until they are synced.`,
  )
  .parse()
  .opts<{ table: string; requeue?: boolean; json?: boolean }>();

type Kind = 'missing' | 'stale' | 'orphaned';
const KINDS: Record<Kind, string> = {
  missing: 'rows with content but no vectors',
  stale: 'vectors of other content, chunking, generation or metadata',
  orphaned: 'vectors whose source row is gone',
};

runMain(async (env) => {
  const pool = await openDatabase(env, 'embedsync-verify');
  try {
    const p = await resolvePipeline(pool, opts.table);
    const report = await verifyPipeline(pool, p.name);
    const differing = report.missing.length + report.stale.length + report.orphaned.length;
    // Read before requeueing, so the changes queued here do not count as work already in flight.
    const [facts] = await readPipelineFacts(pool, p.name);
    const requeued = opts.requeue && differing > 0 ? await requeueReport(pool, report) : undefined;
    const differingKeys = [...report.missing, ...report.stale, ...report.orphaned];
    const stuck = differing > 0 ? await stuckWarnings(pool, p.name, differingKeys) : [];
    const inFlight = {
      outboxBacklog: facts?.outboxBacklog ?? 0,
      state: facts?.state ?? p.state,
      syncPaused: facts?.syncPaused ?? p.syncPaused,
    };

    if (opts.json) {
      const kinds = (k: Kind) => ({
        count: report[k].length,
        examples: report[k].slice(0, EXAMPLES),
      });
      const deadLettered = {
        count: report.deadLettered.length,
        examples: report.deadLettered.slice(0, EXAMPLES),
      };
      const json = {
        pipeline: p.name,
        rows: report.rows,
        inStep: differing === 0,
        missing: kinds('missing'),
        stale: kinds('stale'),
        orphaned: kinds('orphaned'),
        deadLettered,
        ...(report.truncated === undefined ? {} : { truncated: report.truncated }),
        ...(requeued === undefined ? {} : { requeued }),
        inFlight,
      };
      console.log(JSON.stringify({ ...json, stuck }, null, 2));
    } else {
      console.log(
        `${p.name} (${p.sourceSchema}.${p.sourceTable} → ${vectorsPlace(p)}): ${plural(report.rows, 'row')} checked`,
      );
      if (report.truncated)
        console.log(
          `  ${plural(report.truncated, 'row')} embedded from a text cut to the model's limit (destination.truncate)`,
        );
      for (const kind of Object.keys(KINDS) as Kind[]) console.log(kindLine(report, kind));
      if (report.deadLettered.length > 0) console.log(deadLetterLine(report));
      console.log(verdict(p.name, differing, requeued, inFlight));
      for (const w of stuck) console.log(stuckLine(w));
    }
    if (differing > 0) process.exitCode = 1;
  } finally {
    await pool.end();
  }
});

function kindLine(report: VerifyReport, kind: Kind): string {
  const keys = report[kind];
  const more = keys.length > EXAMPLES ? `, … ${count(keys.length - EXAMPLES)} more` : '';
  const examples = keys.length ? `  e.g. ${keys.slice(0, EXAMPLES).join(', ')}${more}` : '';
  return `  ${kind.padEnd(9)} ${count(keys.length).padStart(7)}  (${KINDS[kind]})${examples}`;
}

function deadLetterLine(report: VerifyReport): string {
  const n = report.deadLettered.length;
  return [
    `  of the missing and stale, ${plural(n, 'key')} ${n === 1 ? 'is a dead letter' : 'are dead letters'}: the provider refused the row (embedded again when its content changes),`,
    '  or its batch failed for good (sent round again by the poller). Why:',
    `    select pk, error, failed_at from embedsync.dead_letters where pipeline = '${report.pipeline}';`,
  ].join('\n');
}

/** Keys sent round again meet the same failing stage: say so, with its error. */
function stuckLine(w: StuckWarning): string {
  const error = (w.lastError.split('\n')[0] ?? '').trim();
  const how = w.retryable ? 'stuck' : 'failed for good (not retried)';
  const were = (n: number) => (n === 1 ? 'was' : 'were');
  const head =
    w.keys > 0
      ? `${count(w.keys)} of these keys ${were(w.keys)} in batches ${how} at ${w.stage}: ${error}; they will fail again`
      : `${plural(w.batches, 'batch', 'batches')} of the pipeline ${w.batches === 1 ? 'is' : 'are'} ${how} ` +
        `at ${w.stage}: ${error}; keys requeued now will fail there too`;
  return `  ${head} until that is fixed (select * from embedsync.stuck_batches).`;
}

function verdict(
  pipeline: string,
  differing: number,
  requeued: number | undefined,
  inFlight: { outboxBacklog: number; state: string; syncPaused: boolean },
): string {
  if (differing === 0) return `${pipeline}: in step.`;
  const lines = [`${pipeline}: NOT in step: ${plural(differing, 'key')} differ.`];
  if (inFlight.outboxBacklog > 0 || inFlight.state === 'backfilling') {
    const busy =
      inFlight.state === 'backfilling'
        ? 'a backfill is running'
        : `${plural(inFlight.outboxBacklog, 'change')} waiting in the outbox`;
    lines.push(`  Work is in flight (${busy}): some of these may be on their way.`);
  }
  if (requeued === undefined)
    lines.push(
      `  npx embedsync verify --table ${pipeline} --requeue queues them for the sync to repair.`,
    );
  else if (inFlight.syncPaused)
    lines.push(
      `  Queued ${plural(requeued, 'change')}; sync is paused, so they wait for npx embedsync resume --table ${pipeline}.`,
    );
  else
    lines.push(
      `  Queued ${plural(requeued, 'change')} for the sync; run verify again once they are processed.`,
    );
  return lines.join('\n');
}
