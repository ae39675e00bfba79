// Relevance: how well search answers the labelled queries of bench/relevance/set.json, per retrieval
// set-up (bench/relevance/variants.ts), side by side in one run. The rows are loaded into a table
// shaped like the demo's products, embedded by a backfill through a real worker, and every query
// goes through search() as an application would call it. For set-ups that rerank, the rerank stage
// alone is timed too, at 20 and at 50 candidates, the two counts alternating query by query.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { applyPipelines } from '../src/capture/apply.js';
import { readProviderEnv } from '../src/config/env.js';
import { canonicalJson, pipelineSchema } from '../src/config/pipeline.js';
import { getPipeline } from '../src/db/catalog.js';
import type { Pool } from '../src/db/pool.js';
import { createProviders, type ProviderRegistry } from '../src/providers/index.js';
import { search } from '../src/search/index.js';
import { rerankHits } from '../src/search/rerank.js';
import { connectClient } from '../src/temporal/connect.js';
import { benchTaskQueue, serviceEnv, timeBackfill } from './helpers/backfill-run.js';
import { onInterrupt } from './helpers/interrupt.js';
import { terminateLeftovers } from './helpers/leftovers.js';
import { startService, type Service } from './helpers/processes.js';
import { distribution, round } from './helpers/stats.js';
import type { BenchContext, BenchOptions, BenchReport, Benchmark } from './helpers/types.js';
import { mean, ndcgAt, recallAt } from './relevance/metrics.js';
import {
  gradesOf,
  readRelevanceSet,
  setProblems,
  type LabelledProduct,
  type RelevanceSet,
} from './relevance/set.js';
import { VARIANTS, type Variant } from './relevance/variants.js';

interface RelevanceOptions extends BenchOptions {
  /** Names of the variants to run (all that can run here, by default). */
  variants?: string[];
}

const RECALL_K = 5;
const NDCG_K = 10;
/** Candidates handed to the rerank model in the latency measurement (a config's 20 to 50). */
const LATENCY_CANDIDATES = [20, 50] as const;
// The demo pipeline's columns, metadata and chunking (examples/products.yaml); a variant may replace
// any of them.
const DEMO_PIPELINE = {
  embed: { columns: [{ column: 'name', prefix: 'Product: ' }, 'description'] },
  metadata: ['category', 'price', 'in_stock'],
  chunking: { size: 2000, overlap: 200 },
};

export const relevanceBench: Benchmark = {
  name: 'relevance',
  title:
    'Relevance: recall@5 and nDCG@10 of search on a labelled product set, per retrieval set-up',
  run,
};

interface QueryResult {
  query: string;
  /** Row ids, best first (the first NDCG_K). */
  ranked: number[];
  recall: number;
  ndcg: number;
  /** Keyword traps among the first RECALL_K. */
  traps: number;
  ms: number;
}

interface VariantResult {
  variant: Variant;
  table: string;
  queries: QueryResult[];
}

interface RerankLatency {
  variant: string;
  candidates: number;
  /** The rerank stage alone, one per query. */
  ms: number[];
}

/** Names of the variants the run can choose from, for --variants. */
export const VARIANT_NAMES = VARIANTS.map((v) => v.name);

async function run(ctx: BenchContext): Promise<BenchReport> {
  const options = ctx.options as RelevanceOptions;
  const set = await readRelevanceSet();
  const problems = setProblems(set);
  if (problems.length > 0) throw new Error(`the relevance set is broken: ${problems.join('; ')}`);
  const chosen = VARIANTS.filter((v) => !options.variants || options.variants.includes(v.name));
  const skipped: { name: string; why: string }[] = [];
  const runnable: Variant[] = [];
  for (const v of chosen) {
    const why = await v.unavailable?.();
    if (why) skipped.push({ name: v.name, why });
    else runnable.push(v);
  }
  for (const s of skipped) ctx.log(`${s.name}: skipped, ${s.why}`);
  if (runnable.length === 0) throw new Error('no variant can run here');

  // One table per distinct pipeline: variants that differ only in search options share vectors.
  const tables = new Map<string, string>();
  for (const v of runnable) {
    const key = canonicalJson(v.pipeline);
    if (!tables.has(key)) tables.set(key, `relevance_${tables.size + 1}`);
  }
  const tableOf = (v: Variant): string => tables.get(canonicalJson(v.pipeline)) ?? '';
  for (const v of runnable) {
    const table = tableOf(v);
    if (await tableExists(ctx.db.pool, table)) continue;
    await loadProducts(ctx.db.pool, table, set.products);
    // The worker reads the catalog when it starts, so every pipeline is applied before it is.
    await applyPipelines(ctx.db.pool, [
      pipelineSchema.parse({
        name: table,
        source: { table: `public.${table}` },
        ...DEMO_PIPELINE,
        ...v.pipeline,
      }),
    ]);
  }
  await embedAll(ctx, [...tables.values()], set.products.length);

  const providers = createProviders();
  const results: VariantResult[] = [];
  for (const v of runnable) {
    const table = tableOf(v);
    const queries: QueryResult[] = [];
    for (const q of set.queries) {
      const started = performance.now();
      const hits = await search(ctx.db.pool, providers, table, q.text, {
        ...v.search,
        limit: NDCG_K,
      });
      const ms = performance.now() - started;
      const ranked = hits.map((h) => Number(h.pk));
      const grades = gradesOf(q);
      queries.push({
        query: q.id,
        ranked,
        recall: recallAt(ranked, grades, RECALL_K),
        ndcg: ndcgAt(ranked, grades, NDCG_K),
        traps: ranked.slice(0, RECALL_K).filter((id) => q.traps.includes(id)).length,
        ms,
      });
    }
    const r = { variant: v, table, queries };
    results.push(r);
    ctx.log(
      `${v.name}: recall@${RECALL_K} ${fixed(mean(queries.map((x) => x.recall)))}, nDCG@${NDCG_K} ${fixed(mean(queries.map((x) => x.ndcg)))}`,
    );
  }
  const latency = await rerankLatency(
    ctx,
    providers,
    set,
    runnable.filter((v) => v.search.rerank),
    tableOf,
  );
  return report(set, results, skipped, latency);
}

/**
 * The rerank stage of each reranking variant, timed alone: per query its retrieval's 50 best, then
 * rerankHits on the first 20 and on all 50, the two in turn first (a model already loaded by the
 * searches above).
 */
async function rerankLatency(
  ctx: BenchContext,
  providers: ProviderRegistry,
  set: RelevanceSet,
  variants: readonly Variant[],
  tableOf: (v: Variant) => string,
): Promise<RerankLatency[]> {
  const out: RerankLatency[] = [];
  const most = Math.max(...LATENCY_CANDIDATES);
  for (const v of variants) {
    const table = tableOf(v);
    const pipeline = await getPipeline(ctx.db.pool, table);
    const retrieval = { ...v.search, rerank: false };
    const times = LATENCY_CANDIDATES.map((candidates) => ({ candidates, ms: [] as number[] }));
    for (const [i, q] of set.queries.entries()) {
      const hits = await search(ctx.db.pool, providers, table, q.text, {
        ...retrieval,
        limit: most,
      });
      for (const t of i % 2 === 0 ? times : [...times].reverse()) {
        const started = performance.now();
        await rerankHits(providers, pipeline, q.text, hits.slice(0, t.candidates), NDCG_K);
        t.ms.push(performance.now() - started);
      }
    }
    for (const t of times) {
      out.push({ variant: v.name, ...t });
      const d = distribution(t.ms);
      ctx.log(
        `${v.name}: rerank of ${t.candidates} candidates p50 ${round(d.p50)} ms, p90 ${round(d.p90)} ms`,
      );
    }
  }
  return out;
}

async function tableExists(pool: Pool, table: string): Promise<boolean> {
  const { rows } = await pool.query<{ ok: boolean }>('select to_regclass($1) is not null as ok', [
    `public.${table}`,
  ]);
  return rows[0]?.ok ?? false;
}

/** public.<table> shaped like the demo products table, holding the set's rows under their ids. */
async function loadProducts(
  pool: Pool,
  table: string,
  products: readonly LabelledProduct[],
): Promise<void> {
  // Table names are generated here from [a-z0-9_] only.
  await pool.query(`create table public.${table} (like public.products including all)`);
  await pool.query(
    `insert into public.${table} (id, name, description, category, price, in_stock)
     select * from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::boolean[])`,
    [
      products.map((p) => p.id),
      products.map((p) => p.name),
      products.map((p) => p.description),
      products.map((p) => p.category),
      products.map((p) => p.price),
      products.map((p) => p.in_stock),
    ],
  );
}

/** Backfills every table through one worker started as `npm run worker` starts it. */
async function embedAll(ctx: BenchContext, tables: readonly string[], rows: number): Promise<void> {
  const taskQueue = benchTaskQueue();
  const logDir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-bench-'));
  const { client, connection } = await connectClient({
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
  });
  const forgetLeftovers = onInterrupt(() => terminateLeftovers(client, taskQueue));
  let worker: Service | undefined;
  let ok = false;
  try {
    worker = startService('worker', serviceEnv(ctx, taskQueue), logDir);
    await worker.ready;
    for (const table of tables) {
      const backfill = await timeBackfill(client, ctx.db.pool, table, { taskQueue, rows });
      const { rows: counted } = await ctx.db.pool.query<{ n: number }>(
        `select count(distinct pk)::int as n from public.${table}_embeddings`,
      );
      if (counted[0]?.n !== rows)
        throw new Error(`${table}: ${counted[0]?.n ?? 0} of ${rows} rows have vectors`);
      ctx.log(`${table}: ${rows} rows embedded in ${round(backfill.seconds)} s`);
    }
    ok = true;
  } finally {
    await worker?.stop();
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await connection.close();
    if (ok) await rm(logDir, { recursive: true, force: true });
    else ctx.log(`worker log kept in ${logDir}`);
  }
}

const fixed = (n: number): string => n.toFixed(3);
const MISSING_SHOWN = 5;
const listed = (names: readonly string[]): string =>
  names.length > MISSING_SHOWN
    ? `${names.slice(0, MISSING_SHOWN).join('; ')} and ${names.length - MISSING_SHOWN} more`
    : names.join('; ');

function report(
  set: RelevanceSet,
  results: readonly VariantResult[],
  skipped: readonly { name: string; why: string }[],
  latency: readonly RerankLatency[],
): BenchReport {
  const nameOf = new Map(set.products.map((p) => [p.id, p.name]));
  const byId = new Map(set.queries.map((q) => [q.id, q]));
  const summary = results.map((r) => ({
    variant: r.variant.name,
    about: r.variant.about,
    table: r.table,
    recall: mean(r.queries.map((q) => q.recall)),
    ndcg: mean(r.queries.map((q) => q.ndcg)),
    noneInTop: r.queries.filter((q) => q.recall === 0).length,
    traps: r.queries.reduce((s, q) => s + q.traps, 0),
    msP50: distribution(r.queries.map((q) => q.ms)).p50,
  }));
  const stage = latency.map((l) => ({ ...l, d: distribution(l.ms) }));
  const misses = results.flatMap((r) =>
    r.queries
      .filter((q) => q.recall < 1)
      .map((q) => {
        const labels = byId.get(q.query);
        const top = q.ranked.slice(0, RECALL_K);
        const missing = [...(labels?.relevant ?? []), ...(labels?.partial ?? [])].filter(
          (id) => !top.includes(id),
        );
        const shown = top.map((id) => {
          const mark = labels?.traps.includes(id)
            ? ' (trap)'
            : labels?.relevant.includes(id) || labels?.partial.includes(id)
              ? ' ✓'
              : '';
          return `${nameOf.get(id) ?? id}${mark}`;
        });
        return [
          `${q.query} ${labels?.text ?? ''}`,
          r.variant.name,
          fixed(q.recall),
          fixed(q.ndcg),
          listed(missing.map((id) => nameOf.get(id) ?? String(id))),
          shown.join('; '),
        ];
      }),
  );
  return {
    settings: {
      products: set.products.length,
      queries: set.queries.length,
      variants: results.map((r) => r.variant.name).join(', '),
      ...(skipped.length ? { skipped: skipped.map((s) => `${s.name} (${s.why})`).join(', ') } : {}),
      ...(latency.length ? { localModelThreads: readProviderEnv().local.threads } : {}),
    },
    figures: [
      ...summary.flatMap((s) => [
        { label: `${s.variant}: recall@${RECALL_K}`, value: fixed(s.recall) },
        { label: `${s.variant}: nDCG@${NDCG_K}`, value: fixed(s.ndcg) },
      ]),
      ...stage.map((l) => ({
        label: `${l.variant}: rerank of ${l.candidates} candidates, p50`,
        value: `${round(l.d.p50)} ms`,
      })),
    ],
    tables: [
      {
        title: 'Side by side',
        columns: [
          'variant',
          `recall@${RECALL_K}`,
          `nDCG@${NDCG_K}`,
          `queries with nothing relevant in the top ${RECALL_K}`,
          `keyword traps in the top ${RECALL_K} (all queries)`,
          'search p50 (ms)',
          'what it is',
        ],
        rows: summary.map((s) => [
          s.variant,
          fixed(s.recall),
          fixed(s.ndcg),
          `${s.noneInTop} of ${set.queries.length}`,
          String(s.traps),
          String(round(s.msP50)),
          s.about,
        ]),
      },
      ...(stage.length
        ? [
            {
              title: `Rerank stage alone, per search (${LATENCY_CANDIDATES.join(' and ')} candidates in turn, every query)`,
              columns: [
                'variant',
                'candidates',
                'p50 (ms)',
                'p90 (ms)',
                'max (ms)',
                'p50 per candidate (ms)',
              ],
              rows: stage.map((l) => [
                l.variant,
                String(l.candidates),
                String(round(l.d.p50)),
                String(round(l.d.p90)),
                String(round(l.d.max)),
                String(round(l.d.p50 / l.candidates, 2)),
              ]),
            },
          ]
        : []),
      {
        title: 'Per query (recall@5 / nDCG@10)',
        columns: ['query', 'relevant + partial', ...results.map((r) => r.variant.name)],
        rows: set.queries.map((q) => [
          `${q.id} ${q.text}`,
          `${q.relevant.length} + ${q.partial.length}`,
          ...results.map((r) => {
            const x = r.queries.find((y) => y.query === q.id);
            return x ? `${fixed(x.recall)} / ${fixed(x.ndcg)}` : '';
          }),
        ]),
      },
      {
        title: `Misses: labelled rows not in the top ${RECALL_K}, and what came instead (✓ labelled, (trap) a keyword trap)`,
        columns: [
          'query',
          'variant',
          `recall@${RECALL_K}`,
          `nDCG@${NDCG_K}`,
          'missing',
          `top ${RECALL_K}`,
        ],
        rows: misses,
      },
    ],
    data: {
      summary,
      skipped,
      rerankLatency: stage.map((l) => ({
        variant: l.variant,
        candidates: l.candidates,
        ms: l.ms.map((x) => round(x, 2)),
      })),
      queries: results.map((r) => ({
        variant: r.variant.name,
        pipeline: r.variant.pipeline,
        search: r.variant.search,
        results: r.queries.map((q) => ({ ...q, ms: round(q.ms, 2) })),
      })),
    },
    notes: [
      `recall@${RECALL_K}: the share of a query's labelled rows (relevant or partial) in its first ${RECALL_K} results, out of at most ${RECALL_K}, so every query can reach 1; nDCG@${NDCG_K}: gains 2^grade − 1 (relevant 3, partial 1) over log2(rank + 1), against the ideal order of the query's labels. Both are means over the ${set.queries.length} queries.`,
      'The set is small and was written and labelled by hand (bench/relevance/README.md): a difference of a few hundredths between variants is one or two queries; read the per-query table before trusting it.',
      'Keyword traps are rows written to share a query’s words and not its meaning (a woodworking book titled "Warm Up Your Workshop" for "something warm for hiking"). Many are near in topic too (a denim jacket for "jacket for cold weather"), so a model of meaning meets some of them as well: the count says which traps a set-up falls for, it is not a score.',
      ...(stage.length
        ? [
            `The rerank stage is rerankHits alone (the query and each candidate's chunk to the model, the hits back in its order), after the searches above loaded the model; a local cross-encoder runs on EMBEDSYNC_LOCAL_THREADS (${readProviderEnv().local.threads} here) ONNX Runtime threads in the searching process. The search p50 of a reranking variant above includes it at 50 candidates.`,
          ]
        : []),
      ...skipped.map((s) => `${s.name} was skipped: ${s.why}.`),
    ],
  };
}
