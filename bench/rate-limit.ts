// Rate limit: a backfill against an OpenAI-compatible server that enforces a tokens- and
// requests-per- minute budget and answers 429 beyond it. How much of the budget does embedsync use,
// and how often does it overrun it? Two worker processes share the budget: the requests per minute
// through the embedding task queue's rate, which the Temporal server enforces, and the tokens per
// minute through the token bucket in the database. Three runs, side by side: the server counting
// tokens as embedsync estimates them (cl100k) with the budget declared; counting bytes/4, with the
// budget declared; counting bytes/4 with nothing declared, so the budget is learned from the
// server's x-ratelimit-* headers.
import { DEFAULT_WINDOW } from '../src/backfill/start.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { removePipeline } from '../src/capture/apply.js';
import { readRateObservations } from '../src/db/rate-observations.js';
import {
  mockTokenCount,
  startMockProvider,
  type RecordedRequest,
  type TokenCounting,
} from '../src/mock-provider/server.js';
import { connectClient } from '../src/temporal/connect.js';
import {
  applyBenchPipeline,
  benchTaskQueue,
  fillSourceTable,
  forgetEarlierRuns,
  serviceEnv,
  timeBackfill,
} from './helpers/backfill-run.js';
import { onInterrupt } from './helpers/interrupt.js';
import { terminateLeftovers } from './helpers/leftovers.js';
import { startService, type Service } from './helpers/processes.js';
import { round } from './helpers/stats.js';
import type { BenchContext, BenchOptions, BenchReport, Benchmark } from './helpers/types.js';

/** Options of this benchmark beyond the shared ones (registered in run.ts). */
interface RateLimitOptions extends BenchOptions {
  textTokens?: number;
  window?: number;
  batchSize?: number;
  runs?: RunName[];
}

/** How the server counts tokens, and whether embedsync is told its budget. */
interface Variant {
  name: RunName;
  title: string;
  counting: TokenCounting;
  declared: boolean;
}

export const RUNS = ['declared', 'bytes4', 'learned'] as const;
export type RunName = (typeof RUNS)[number];
const VARIANTS: Record<RunName, Variant> = {
  declared: {
    name: 'declared',
    title: 'counts cl100k, budget declared',
    counting: 'cl100k',
    declared: true,
  },
  bytes4: {
    name: 'bytes4',
    title: 'counts bytes/4, budget declared',
    counting: 'bytes/4',
    declared: true,
  },
  learned: {
    name: 'learned',
    title: 'counts bytes/4, nothing declared',
    counting: 'bytes/4',
    declared: false,
  },
};

const BUDGET = { requestsPerMinute: 3000, tokensPerMinute: 1_000_000 };
const MODEL = 'text-embedding-3-small';
const WORKERS = 2;
const DEFAULTS = { rows: 100_000, textTokens: 16 };
const AIMS = { budgetShare: 0.9, rateLimitedShare: 0.01 };
/**
 * The start (workers picking up the first pages) and the end (the last batches draining) are not
 * steady.
 */
const EDGE_MS = 20_000;
const BUCKET_MS = 30_000;
const WORDS = [
  'river',
  'stone',
  'maple',
  'harbor',
  'lantern',
  'copper',
  'meadow',
  'signal',
  'orbit',
  'canvas',
  'thunder',
  'velvet',
  'garden',
  'pencil',
  'window',
  'marble',
];

export const rateLimit: Benchmark = {
  name: 'rate-limit',
  title:
    'Rate limit: share of a 1M tokens/min, 3,000 requests/min budget used by a backfill, and 429s, with the server counting tokens as embedsync does, its own way (bytes/4), and with the budget undeclared',
  run,
};

/**
 * About `tokens` cl100k tokens of text (a common word and its leading space are one token each).
 */
function rowText(i: number, tokens: number): string {
  const words = Array.from(
    { length: Math.max(1, tokens) },
    (_, k) => WORDS[(i * 7 + k * 13) % WORDS.length] ?? 'word',
  );
  return words.join(' ');
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const options = ctx.options as RateLimitOptions;
  const rows = options.rows ?? DEFAULTS.rows;
  const textTokens = options.textTokens ?? DEFAULTS.textTokens;
  const results: RunResult[] = [];
  for (const name of options.runs?.length ? options.runs : RUNS)
    results.push(await runVariant(ctx, VARIANTS[name], { rows, textTokens, options }));
  return report(results, {
    rows,
    textTokens,
    window: options.window,
    batchSize: options.batchSize,
  });
}

interface RunResult {
  variant: Variant;
  requests: RecordedRequest[];
  seconds: number;
  processed: number;
  plan: PacedPlan | undefined;
  /** What embedsync learned from the server's answers (embedsync.rate_observations). */
  observed: { tokenRatio: number; bucketsLowered: number; rateLimited: number } | undefined;
}

/** One backfill of its own table against a fresh mock, with fresh workers and pacing state. */
async function runVariant(
  ctx: BenchContext,
  variant: Variant,
  settings: { rows: number; textTokens: number; options: RateLimitOptions },
): Promise<RunResult> {
  const { rows, textTokens, options } = settings;
  const table = `rate_limit_${variant.name}`;
  const mock = await startMockProvider({ ...BUDGET, tokenCounting: variant.counting });
  const forgetMock = onInterrupt(() => mock.close());
  const taskQueue = benchTaskQueue();
  const logDir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-bench-'));
  const { client, connection } = await connectClient({
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
  });
  const forgetLeftovers = onInterrupt(() => terminateLeftovers(client, taskQueue));
  const workers: Service[] = [];
  let ok = false;
  try {
    ctx.log(`${variant.name} (${variant.title}):`);
    ctx.log(`filling ${rows} rows of about ${textTokens} tokens of description each`);
    // "Product: Item <i>\n" adds a few tokens of its own to each document.
    await fillSourceTable(ctx.db.pool, table, rows, (i) => ({
      name: `Item ${i}`,
      description: rowText(i, textTokens),
    }));
    // What an earlier run learned, left in the buckets or put on record is not this run's.
    await forgetEarlierRuns(ctx.db.pool);
    await applyBenchPipeline(ctx.db.pool, table, {
      provider: 'openai',
      model: MODEL,
      dimensions: 256,
      baseURL: mock.openaiBaseURL,
      ...(variant.declared ? BUDGET : {}),
    });
    // The pipeline comes first, so the workers pace the queue from their start.
    for (let w = 0; w < WORKERS; w++)
      workers.push(
        startService(
          'worker',
          serviceEnv(ctx, taskQueue),
          await mkdtemp(path.join(logDir, `worker-${w}-`)),
        ),
      );
    await Promise.all(workers.map((w) => w.ready));
    mock.reset();
    ctx.log(
      `backfill of ${rows} rows with ${WORKERS} workers${options.window ? `, window ${options.window}` : ''}${options.batchSize ? `, batch size ${options.batchSize}` : ''}`,
    );
    const backfill = await timeBackfill(client, ctx.db.pool, table, {
      taskQueue,
      rows,
      ...(options.window ? { window: options.window } : {}),
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    });
    ctx.log(`done in ${round(backfill.seconds)} s; ${mock.requests.length} requests answered`);
    const plan = await pacedPlan(workers[0]);
    const row = (await readRateObservations(ctx.db.pool)).find((r) => r.model === MODEL);
    ok = true;
    return {
      variant,
      requests: [...mock.requests],
      seconds: backfill.seconds,
      processed: backfill.result.processed,
      plan,
      observed: row && {
        tokenRatio: row.tokenRatio,
        bucketsLowered: row.bucketsLowered,
        rateLimited: row.rateLimited,
      },
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await connection.close();
    await mock.close();
    forgetMock();
    // The next run's workers must not plan from this run's pipeline.
    await removePipeline(ctx.db.pool, table).catch(() => undefined);
    if (ok) await rm(logDir, { recursive: true, force: true });
    else ctx.log(`worker logs kept in ${logDir}`);
  }
}

/** What the worker last logged of its plan for the openai queue. */
interface PacedPlan {
  activitiesPerSecond?: number;
  tokensPerRequest?: number;
}

async function pacedPlan(worker: Service | undefined): Promise<PacedPlan | undefined> {
  if (!worker) return undefined;
  const lines = (await readFile(worker.logFile, 'utf8').catch(() => '')).split('\n');
  let plan: PacedPlan | undefined;
  // "embedding queue paced" at the start, "embedding rate limits changed" once limits are learned.
  for (const line of lines) {
    if (!/"embedding (queue paced|rate limits changed)"/.test(line) || !line.includes('"openai"'))
      continue;
    const { activitiesPerSecond, tokensPerRequest } = JSON.parse(line) as PacedPlan;
    plan = { activitiesPerSecond, tokensPerRequest };
  }
  return plan;
}

interface Answer {
  at: number;
  status: number;
  tokens: number;
}

/** The most tokens accepted within any 60 s, over windows starting at each accepted request. */
function busiestMinute(accepted: readonly Answer[]): number {
  let most = 0;
  let inWindow = 0;
  let end = 0;
  for (const [start, a] of accepted.entries()) {
    while (end < accepted.length && (accepted[end]?.at ?? Infinity) < a.at + 60_000)
      inWindow += accepted[end++]?.tokens ?? 0;
    most = Math.max(most, inWindow);
    inWindow -= accepted[start]?.tokens ?? 0;
  }
  return most;
}

/** One run's figures, in the server's own count of tokens. */
function measure(r: RunResult) {
  const answers: Answer[] = r.requests
    .filter((q) => q.api === 'openai')
    .map((q) => ({
      at: q.at,
      status: q.status,
      tokens:
        q.status === 200
          ? q.inputs.reduce((s, t) => s + mockTokenCount(t, r.variant.counting), 0)
          : 0,
    }));
  const accepted = answers.filter((a) => a.status === 200);
  const limited = answers.filter((a) => a.status === 429).length;
  if (accepted.length === 0) throw new Error(`${r.variant.name}: the mock accepted no request`);
  const first = accepted[0]?.at ?? 0;
  const last = accepted[accepted.length - 1]?.at ?? 0;
  const totalTokens = accepted.reduce((s, a) => s + a.tokens, 0);
  const perMinute = (from: number, to: number): number =>
    (accepted.filter((a) => a.at >= from && a.at < to).reduce((s, a) => s + a.tokens, 0) * 60_000) /
    Math.max(1, to - from);
  // Steady: past the first page's start-up and before the last batches drain; the whole run if too
  // short.
  const steadyFrom = last - first > 3 * EDGE_MS ? first + EDGE_MS : first;
  const steadyTo = last - first > 3 * EDGE_MS ? last - EDGE_MS : last + 1;
  const inSteady = (a: Answer) => a.at >= steadyFrom && a.at < steadyTo;
  const steadyTokensPerMinute = perMinute(steadyFrom, steadyTo);
  const steadyAnswers = answers.filter(inSteady);
  const steadyLimited = steadyAnswers.filter((a) => a.status === 429).length;
  const steadyRequests = accepted.filter(inSteady).length;
  const buckets: string[][] = [];
  for (let t = first; t <= last; t += BUCKET_MS) {
    const inBucket = answers.filter((a) => a.at >= t && a.at < t + BUCKET_MS);
    const tokens = inBucket.reduce((s, a) => s + a.tokens, 0);
    const width = Math.min(BUCKET_MS, last + 1 - t);
    buckets.push([
      `${round((t - first) / 1000, 0)}–${round((t - first + width) / 1000, 0)}`,
      String(inBucket.filter((a) => a.status === 200).length),
      String(inBucket.filter((a) => a.status === 429).length),
      Math.round((tokens * 60_000) / width).toLocaleString('en-US'),
      `${round(((tokens * 60_000) / width / BUDGET.tokensPerMinute) * 100)} %`,
    ]);
  }
  return {
    answers: answers.length,
    accepted: accepted.length,
    limited,
    otherErrors: answers.length - accepted.length - limited,
    totalTokens,
    wholeTokensPerMinute: perMinute(first, last + 1),
    steadyFrom: steadyFrom - first,
    steadyTo: steadyTo - first,
    steadyTokensPerMinute,
    share: steadyTokensPerMinute / BUDGET.tokensPerMinute,
    limitedShare: limited / answers.length,
    steadyAnswers: steadyAnswers.length,
    steadyLimited,
    steadyLimitedShare: steadyAnswers.length > 0 ? steadyLimited / steadyAnswers.length : 0,
    steadyRequestsPerMinute: (steadyRequests * 60_000) / Math.max(1, steadyTo - steadyFrom),
    meanTokensPerRequest: totalTokens / accepted.length,
    busiest: busiestMinute(accepted),
    buckets,
  };
}

const pct = (x: number, digits = 1): string => `${round(x * 100, digits)} %`;

function report(
  results: readonly RunResult[],
  run: {
    rows: number;
    textTokens: number;
    window: number | undefined;
    batchSize: number | undefined;
  },
): BenchReport {
  const measured = results.map((r) => ({ r, m: measure(r) }));
  const figures = measured.flatMap(({ r, m }) => [
    {
      label: `${r.variant.name}: tokens/min, steady part (server's count)`,
      value: `${Math.round(m.steadyTokensPerMinute).toLocaleString('en-US')} = ${pct(m.share)} of budget`,
      aim: '≥ 90 % of budget',
      met: m.share >= AIMS.budgetShare,
    },
    {
      label: `${r.variant.name}: requests answered 429, steady part`,
      value: `${m.steadyLimited} of ${m.steadyAnswers} = ${pct(m.steadyLimitedShare, 2)}`,
      aim: '≤ 1 %',
      met: m.steadyLimitedShare <= AIMS.rateLimitedShare,
    },
    {
      label: `${r.variant.name}: requests answered 429, whole run`,
      value: `${m.limited} of ${m.answers} = ${pct(m.limitedShare, 2)}`,
    },
  ]);
  const side = (label: string, cell: (x: (typeof measured)[number]) => string): string[] => [
    label,
    ...measured.map(cell),
  ];
  const sideBySide = [
    side('server counts', ({ r }) => r.variant.counting),
    side('budget declared to embedsync', ({ r }) => (r.variant.declared ? 'yes' : 'no: learned')),
    side(
      'tokens/min, steady part',
      ({ m }) => `${Math.round(m.steadyTokensPerMinute).toLocaleString('en-US')} (${pct(m.share)})`,
    ),
    side(
      '429s, steady part',
      ({ m }) => `${m.steadyLimited} of ${m.steadyAnswers} (${pct(m.steadyLimitedShare, 2)})`,
    ),
    side('429s, whole run', ({ m }) => `${m.limited} of ${m.answers} (${pct(m.limitedShare, 2)})`),
    side(
      'most tokens in any 60 s',
      ({ m }) =>
        `${m.busiest.toLocaleString('en-US')} (${pct(m.busiest / BUDGET.tokensPerMinute)})`,
    ),
    side(
      'tokens/min, first to last request',
      ({ m }) =>
        `${Math.round(m.wholeTokensPerMinute).toLocaleString('en-US')} (${pct(m.wholeTokensPerMinute / BUDGET.tokensPerMinute)})`,
    ),
    side('requests/min, steady part', ({ m }) => String(Math.round(m.steadyRequestsPerMinute))),
    side(
      'tokens per accepted request',
      ({ r, m }) =>
        `${Math.round(m.meanTokensPerRequest)} (plan: ${r.plan?.tokensPerRequest?.toLocaleString('en-US') ?? '?'} at most, ${r.plan?.activitiesPerSecond === undefined ? '?' : round(r.plan.activitiesPerSecond * 60)} requests/min)`,
    ),
    side('learned: server count ÷ estimate', ({ r }) =>
      r.observed ? r.observed.tokenRatio.toFixed(3) : '–',
    ),
    side('learned: buckets lowered to what the server said was left', ({ r }) =>
      String(r.observed?.bucketsLowered ?? '–'),
    ),
    side(
      'backfill',
      ({ r, m }) =>
        `${r.processed.toLocaleString('en-US')} rows, ${m.totalTokens.toLocaleString('en-US')} tokens in ${round(r.seconds)} s`,
    ),
  ];
  return {
    settings: {
      rows: run.rows,
      textTokens: run.textTokens,
      workers: WORKERS,
      model: MODEL,
      requestsPerMinute: BUDGET.requestsPerMinute,
      tokensPerMinute: BUDGET.tokensPerMinute,
      window: run.window ?? `default (${DEFAULT_WINDOW})`,
      batchSize: run.batchSize ?? 'pipeline default (200)',
      runs: results.map((r) => r.variant.name).join(', '),
    },
    figures,
    tables: [
      {
        title: 'The runs side by side',
        columns: ['', ...measured.map(({ r }) => `${r.variant.name} (${r.variant.title})`)],
        rows: sideBySide,
      },
      ...measured.map(({ r, m }) => ({
        title: `${r.variant.name}: every ${BUCKET_MS / 1000} s from the first request`,
        columns: ['seconds', 'accepted', '429', 'tokens/min', 'of budget'],
        rows: m.buckets,
      })),
    ],
    data: {
      runs: Object.fromEntries(
        measured.map(({ r, m }) => [
          r.variant.name,
          {
            counting: r.variant.counting,
            declared: r.variant.declared,
            seconds: round(r.seconds, 2),
            processed: r.processed,
            requests: m.answers,
            accepted: m.accepted,
            rateLimited: m.limited,
            otherErrors: m.otherErrors,
            totalTokens: m.totalTokens,
            steady: {
              fromS: round(m.steadyFrom / 1000),
              toS: round(m.steadyTo / 1000),
              tokensPerMinute: Math.round(m.steadyTokensPerMinute),
              requestsPerMinute: Math.round(m.steadyRequestsPerMinute),
              budgetShare: round(m.share, 4),
              requests: m.steadyAnswers,
              rateLimited: m.steadyLimited,
              rateLimitedShare: round(m.steadyLimitedShare, 5),
            },
            rateLimitedShare: round(m.limitedShare, 5),
            meanTokensPerRequest: round(m.meanTokensPerRequest),
            busiestMinuteTokens: m.busiest,
            plan: r.plan ?? null,
            observed: r.observed ?? null,
          },
        ]),
      ),
    },
    notes: [
      `The mock provider runs in the benchmark's process and keeps the budgets as token buckets per model (refilled continuously, starting full); a request over either is answered 429 with retry-after. Tokens are counted from the mock's record of every request it answered, the way that run's mock counts them: cl100k (as OpenAI counts for its own models, and as embedsync estimates) or UTF-8 bytes ÷ 4.`,
      `Steady part: from ${EDGE_MS / 1000} s after the first accepted request to ${EDGE_MS / 1000} s before the last, leaving out the workers' start on the first pages and the last batches draining.`,
      `Each run has its own table, mock, task queue and ${WORKERS} worker processes, started as \`npm run worker\` starts them, and starts with no learned ratio or limits and empty buckets. Declared: the pipeline declares the mock's budget. Learned: it declares none, and the workers pace from the x-ratelimit-limit-* headers of the mock's first answers.`,
      'Each row is "Product: Item <n>" and a description of about the given number of one-token words; the default chunk size (2,000 tokens) keeps every row one chunk.',
    ],
  };
}
