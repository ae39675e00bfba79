// npx embedsync search: a text query against a pipeline's vectors, with metadata filters, as a
// table or JSON; --hybrid fuses it with a full-text search of the chunks.
import { Command, InvalidArgumentError } from 'commander';
import { inspectTable } from '../capture/inspect.js';
import { resolvePipeline, type Pipeline } from '../db/catalog.js';
import type { Pool } from '../db/pool.js';
import { createProviders } from '../providers/index.js';
import {
  DEFAULT_FUSION,
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

function weight(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('must be a number of 0 or more.');
  return n;
}

function rankConstant(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('must be a number greater than 0.');
  return n;
}

const program = new Command('embedsync search')
  .usage(
    '--table <pipeline> [--limit <n>] [--filter <filter>]… [--hybrid [--vector-weight <w>] [--text-weight <w>]] [--rerank] [--all-chunks] [--json] <text...>',
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
    '--hybrid',
    "fuse the vector results with a full-text search of the chunks (the pipeline's search.language) by reciprocal rank fusion",
  )
  .option('--vector-weight <w>', 'weight of the vector ranking in --hybrid (default 1)', weight)
  .option('--text-weight <w>', 'weight of the full-text ranking in --hybrid (default 1)', weight)
  .option('--rrf-k <k>', 'rank constant of the fusion in --hybrid (default 60)', rankConstant)
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

--hybrid also ranks the chunks by Postgres full-text search (chunks holding any of the words, those
matching the whole query first, read as a search box: "quoted phrases", or, -word) and fuses the
two rankings: each row scores vectorWeight/(k + its vector rank) +
textWeight/(k + its text rank), so an exact word (a part number, a name) only full text finds can
rise. The same filters apply to both. --vector-weight, --text-weight and --rrf-k imply --hybrid.
Pipelines that write into a column of the source table keep no chunk text and refuse it.

--rerank sends the pipeline's nearest rerank.candidates results (default 50, at least --limit) with
the query to its rerank model (a cross-encoder run here, rerank.provider local, or Cohere Rerank or
Amazon Rerank on Bedrock), and returns them in the model's order with its score in the rerank column
(rerankScore in --json). A local model's score is a logit: higher is more relevant.

Examples:
  npx embedsync search --table products "something warm for hiking" --limit 5
  npx embedsync search --table products "parka XR-200" --hybrid --text-weight 2
  npx embedsync search --table products "rain jacket" --filter in_stock=true --filter "price<=150"
  npx embedsync search --table products "tent" --filter "category in outdoor,camping" --json
  npx embedsync search --table products "something warm for hiking" --rerank --limit 5

Providers read the same environment as the worker (OPENAI_API_KEY, AWS_REGION,
EMBEDSYNC_LOCAL_MODELS, EMBEDSYNC_LOCAL_THREADS, …).`,
  )
  .parse();

const opts = program.opts<{
  table: string;
  limit: number;
  filter: string[];
  allChunks?: boolean;
  rerank?: boolean;
  hybrid?: boolean;
  vectorWeight?: number;
  textWeight?: number;
  rrfK?: number;
  json?: boolean;
}>();
const hybrid = hybridOption();
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
        ...(hybrid ? { hybrid } : {}),
      }),
    );
    if (opts.json)
      console.log(
        JSON.stringify(
          { pipeline: p.name, query: text, filters, ...(hybrid ? { hybrid } : {}), results: hits },
          null,
          2,
        ),
      );
    else
      console.log(
        hits.length
          ? table(hits, p.config.metadata, hybrid !== undefined)
          : `no results in ${p.name}${filters.length ? ' matching the filters' : ''}`,
      );
  } finally {
    await pool.end();
  }
});

/** The fusion asked for: --hybrid, or any of its weights. */
function hybridOption(): { vectorWeight: number; textWeight: number; k: number } | undefined {
  const { vectorWeight, textWeight, rrfK } = opts;
  if (!opts.hybrid && vectorWeight === undefined && textWeight === undefined && rrfK === undefined)
    return undefined;
  const d = DEFAULT_FUSION;
  return {
    vectorWeight: vectorWeight ?? d.vectorWeight,
    textWeight: textWeight ?? d.textWeight,
    k: rrfK ?? d.k,
  };
}

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

function table(hits: SearchHit[], keys: readonly string[], hybrid: boolean): string {
  const reranked = hits.some((h) => h.rerankScore !== undefined);
  // In a hybrid search the rows are ordered by the fused score; each side's rank says why.
  const rank = (r: number | null | undefined): string => (r == null ? '-' : String(r));
  const rows = hits.map((h) => [
    ...(reranked ? [h.rerankScore?.toFixed(3) ?? ''] : []),
    ...(hybrid ? [(h.fusedScore ?? 0).toFixed(5), rank(h.vectorRank), rank(h.textRank)] : []),
    h.score.toFixed(3),
    h.pk,
    metadataText(h.metadata, keys),
    snippet(h.chunk),
  ]);
  const header = [
    ...(reranked ? ['rerank'] : []),
    ...(hybrid ? ['fused', 'vector', 'text'] : []),
    'score',
    'pk',
    'metadata',
    'chunk',
  ];
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
