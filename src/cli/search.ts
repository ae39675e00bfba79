// npx embedsync search: a text query against a pipeline's vectors, with metadata filters, as a
// table or JSON.
import { Command } from 'commander';
import { inspectTable } from '../capture/inspect.js';
import { resolvePipeline, type Pipeline } from '../db/catalog.js';
import type { Pool } from '../db/pool.js';
import { createProviders } from '../providers/index.js';
import {
  FILTER_SYNTAX,
  FilterError,
  filterTypeProblem,
  parseFilter,
  RerankError,
  search,
  SearchError,
  type MetadataFilter,
  type SearchHit,
} from '../search/index.js';
import { positiveInt, runMain, UserError } from './common.js';
import { openDatabase } from './connections.js';

const SNIPPET = 60;

const collect = (value: string, previous: string[]): string[] => [...previous, value];

const program = new Command('embedsync search')
  .usage(
    '--table <pipeline> [--limit <n>] [--filter <filter>]… [--all-chunks] [--rerank] [--json] <text...>',
  )
  .description(
    "Search a pipeline's vectors with text, embedded by the pipeline's own model; one result per source row (its best chunk).",
  )
  .argument('<text...>', 'what to search for')
  .requiredOption('-t, --table <pipeline>', 'a pipeline name, or a source table one pipeline syncs')
  .option('-n, --limit <n>', 'results to return (at most 1000)', positiveInt, 10)
  .option(
    '-f, --filter <filter>',
    `keep rows whose metadata matches: ${FILTER_SYNTAX}; repeat to require several`,
    collect,
    [],
  )
  .option(
    '--all-chunks',
    "return matching chunks, several per row possibly, instead of each row's best",
  )
  .option(
    '--rerank',
    "reorder the nearest candidates with the pipeline's rerank model (its rerank config) before the limit",
  )
  .option('--json', 'print the results as JSON')
  .addHelpText(
    'after',
    `
Filters apply to the pipeline's metadata columns. true and false are booleans, numbers compare as
numbers, anything else as text; quote a value to make it text ("123"). A row without the key never
matches, except with !=. A list ("key in a,b,c") matches any of its values.

--rerank sends the pipeline's nearest rerank.candidates results (default 50, at least --limit) with
the query to its rerank model (Cohere Rerank or Amazon Rerank on Bedrock), and returns them in the
model's order with its score in the rerank column (rerankScore in --json).

Examples:
  npx embedsync search --table products "something warm for hiking" --limit 5
  npx embedsync search --table products "rain jacket" --filter in_stock=true --filter "price<=150"
  npx embedsync search --table products "tent" --filter "category in outdoor,camping" --json
  npx embedsync search --table products "something warm for hiking" --rerank --limit 5

Providers read the same environment as the worker (OPENAI_API_KEY, AWS_REGION, …).`,
  )
  .parse();

const opts = program.opts<{
  table: string;
  limit: number;
  filter: string[];
  allChunks?: boolean;
  rerank?: boolean;
  json?: boolean;
}>();
const text = (program.processedArgs[0] as string[]).join(' ');

runMain(async (env) => {
  // Filters are read before connecting, so a typo fails fast without a database.
  const filters = userErrors(() => opts.filter.map(parseFilter));
  const pool = await openDatabase(env, 'embedsync-search');
  try {
    const p = await resolvePipeline(pool, opts.table);
    await checkFilterTypes(pool, p, filters);
    const hits = await userErrorsAsync(() =>
      search(pool, createProviders(), p, text, {
        limit: opts.limit,
        filters,
        bestChunkPerRow: !opts.allChunks,
        rerank: opts.rerank === true,
      }),
    );
    if (opts.json)
      console.log(
        JSON.stringify({ pipeline: p.name, query: text, filters, results: hits }, null, 2),
      );
    else
      console.log(
        hits.length
          ? table(hits, p.config.metadata)
          : `no results in ${p.name}${filters.length ? ' matching the filters' : ''}`,
      );
  } finally {
    await pool.end();
  }
});

/** A filter whose value cannot match its column's type is an error, not an empty result. */
async function checkFilterTypes(pool: Pool, p: Pipeline, filters: MetadataFilter[]): Promise<void> {
  if (filters.length === 0) return;
  const client = await pool.connect();
  const table = await inspectTable(client, p.sourceSchema, p.sourceTable).finally(() =>
    client.release(),
  );
  filters.forEach((f, i) => {
    const column = p.config.metadata.includes(f.key) ? table?.columns.get(f.key) : undefined;
    const problem = column && filterTypeProblem(f, column, `${p.sourceSchema}.${p.sourceTable}`);
    if (problem) throw new UserError(`--filter "${opts.filter[i] ?? ''}": ${problem}`);
  });
}

function userErrors(fn: () => MetadataFilter[]): MetadataFilter[] {
  try {
    return fn();
  } catch (err) {
    throw err instanceof FilterError ? new UserError(err.message) : err;
  }
}

async function userErrorsAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw err instanceof FilterError || err instanceof SearchError || err instanceof RerankError
      ? new UserError(err.message)
      : err;
  }
}

function table(hits: SearchHit[], keys: readonly string[]): string {
  const reranked = hits.some((h) => h.rerankScore !== undefined);
  const rows = hits.map((h) => [
    ...(reranked ? [h.rerankScore?.toFixed(3) ?? ''] : []),
    h.score.toFixed(3),
    h.pk,
    metadataText(h.metadata, keys),
    snippet(h.chunk),
  ]);
  const header = [...(reranked ? ['rerank'] : []), 'score', 'pk', 'metadata', 'chunk'];
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((r) => r[i]?.length ?? 0)),
  );
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** In the pipeline's order (jsonb keeps its own), in the syntax --filter reads. */
const metadataText = (metadata: Record<string, unknown>, keys: readonly string[]): string =>
  keys
    .filter((k) => k in metadata)
    .map(
      (k) => `${k}=${typeof metadata[k] === 'string' ? metadata[k] : JSON.stringify(metadata[k])}`,
    )
    .join(' ');

function snippet(chunk: string): string {
  const flat = chunk.replace(/\s+/g, ' ').trim();
  return flat.length > SNIPPET ? `${flat.slice(0, SNIPPET - 1)}…` : flat;
}
