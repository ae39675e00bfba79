// `backfill --dry-run` and `reembed --dry-run`: what the walk would embed, what it would pay and how
// long the rate limits make it take (src/cost/estimate.ts), with a progress line while the table is
// read. Starts nothing and sends nothing; Temporal is not asked.
import cliProgress from 'cli-progress';
import { readProviderEnv } from '../config/env.js';
import { listPipelines, type Pipeline } from '../db/catalog.js';
import type { Pool } from '../db/pool.js';
import { countSourceRows } from '../db/source.js';
import { estimateWalk, type CostEstimate, type WalkKind } from '../cost/estimate.js';
import { createProviders } from '../providers/index.js';
import { getProvider } from '../providers/types.js';
import { count, duration, money, plural } from './format.js';

export interface DryRunOptions {
  kind: WalkKind;
  batchSize: number;
  json: boolean;
}

export async function dryRun(pool: Pool, p: Pipeline, o: DryRunOptions): Promise<void> {
  const config = o.kind === 'reembed' ? (p.pendingConfig ?? p.config) : p.config;
  const provider = getProvider(createProviders([], readProviderEnv()), config.embedding.provider);
  // The workers pace a provider's queue by the strictest limits of every pipeline it serves.
  const providerConfigs = (await listPipelines(pool))
    .flatMap((x) => (x.pendingConfig ? [x.config, x.pendingConfig] : [x.config]))
    .filter((c) => c.embedding.provider === provider.name);
  const bar = !o.json && process.stderr.isTTY ? await progressBar(pool, p) : undefined;
  let estimate: CostEstimate;
  try {
    estimate = await estimateWalk(pool, p, {
      kind: o.kind,
      batchSize: o.batchSize,
      provider,
      providerConfigs,
      ...(bar ? { onPage: (rows: number) => bar.update(rows) } : {}),
    });
  } finally {
    bar?.stop();
  }
  if (o.json) console.log(JSON.stringify(estimate, null, 2));
  else console.log(describeEstimate(estimate, `${p.sourceSchema}.${p.sourceTable}`));
}

async function progressBar(pool: Pool, p: Pipeline): Promise<cliProgress.SingleBar> {
  const total = await countSourceRows(pool, p);
  const bar = new cliProgress.SingleBar({
    format: `${p.name} {bar} {value}/{total} rows read (dry run: nothing is sent)`,
    stream: process.stderr,
    hideCursor: true,
    barsize: 30,
    fps: 5,
    barCompleteChar: '█',
    barIncompleteChar: '░',
    formatValue: (v) => count(v),
  });
  bar.start(Math.max(total, 1), 0);
  return bar;
}

/** The dry run as a user reads it. */
export function describeEstimate(e: CostEstimate, sourceTable: string): string {
  const what = e.kind === 'backfill' ? 'backfill' : `re-embed as generation ${e.generation}`;
  const lines = [`${e.pipeline}: ${what}, dry run: nothing was started and nothing sent`];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(9)} ${text}`);
  const skipped =
    e.kind === 'backfill' ? ` (${count(e.rowsSkipped)} already match their vectors)` : '';
  row(
    'rows',
    `${plural(e.rows, 'row')} in ${sourceTable}; ${count(e.rowsToEmbed)} to embed${skipped}`,
  );
  row(
    'chunks',
    `${count(e.chunks)}, ${plural(e.distinctTexts, 'distinct text')} (identical texts are paid once)` +
      (e.textsOnRecord > 0 ? `; ${count(e.textsOnRecord)} of them on record already, reused` : ''),
  );
  const how = e.tokensEstimated
    ? `estimated at 1 token per 3 characters, as the rate budget counts them: ${e.provider}/${e.model} is measured in characters and its tokenizer is not public`
    : `counted with ${e.model}'s tokenizer (cl100k_base)`;
  row('tokens', `${count(e.tokens)}, ${how}`);
  row('requests', `${count(e.requests)}, as the walk's batches send them`);
  row('price', priceLine(e));
  row('time', timeLine(e));
  return lines.join('\n');
}

function priceLine(e: CostEstimate): string {
  if (!e.price) {
    return `unknown price for ${e.provider}/${e.model}: declare one in the pipeline's embedding, e.g. price: { online: 0.02, batch: 0.01 } (US dollars per million tokens)`;
  }
  const source =
    e.priceSource === 'declared'
      ? 'the pipeline declares'
      : `list price of ${e.provider}/${e.model}`;
  const batchRate = e.price.batch === undefined ? '' : `, $${e.price.batch} in batch mode`;
  const rates = `${source}: $${e.price.online}${batchRate} per million tokens`;
  const batch =
    e.cost.batch === undefined ? 'no batch mode price' : `${money(e.cost.batch)} in batch mode`;
  return `${money(e.cost.online ?? 0)} online, ${batch} (${rates})`;
}

function timeLine(e: CostEstimate): string {
  const { requestsPerMinute: rpm, tokensPerMinute: tpm } = e.limits;
  if (e.minutes === undefined) {
    return 'no rate limit declared: as fast as the provider answers (declare tokensPerMinute and requestsPerMinute in the embedding, or EMBEDSYNC_<PROVIDER>_TOKENS_PER_MINUTE)';
  }
  const limits = [
    ...(tpm === undefined ? [] : [`${count(tpm)} tokens/min`]),
    ...(rpm === undefined ? [] : [`${count(rpm)} requests/min`]),
  ];
  return `at least ${duration(e.minutes * 60)} under ${limits.join(' and ')}`;
}
