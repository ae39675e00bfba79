// Rate limit: a backfill against an OpenAI-compatible server that enforces a tokens- and
// requests-per- minute budget and answers 429 beyond it. How much of the budget does embedsync use,
// and how often does it overrun it? Two worker processes share the budget: the requests per minute
// through the embedding task queue's rate, which the Temporal server enforces, and the tokens per
// minute through the token bucket in the database.
import { DEFAULT_WINDOW } from '../src/backfill/start.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { countTokens } from '../src/chunking/tokens.js';
import { startMockProvider, type RecordedRequest } from '../src/mock-provider/server.js';
import { connectClient } from '../src/temporal/connect.js';
import {
  applyBenchPipeline,
  benchTaskQueue,
  fillSourceTable,
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
}

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
    'Rate limit: share of a 1M tokens/min, 3,000 requests/min budget used by a backfill, and 429s',
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
  const table = 'rate_limit';
  const mock = await startMockProvider({ ...BUDGET });
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
    ctx.log(`filling ${rows} rows of about ${textTokens} tokens of description each`);
    // "Product: Item <i>\n" adds a few tokens of its own to each document.
    await fillSourceTable(ctx.db.pool, table, rows, (i) => ({
      name: `Item ${i}`,
      description: rowText(i, textTokens),
    }));
    await applyBenchPipeline(ctx.db.pool, table, {
      provider: 'openai',
      model: MODEL,
      dimensions: 256,
      baseURL: mock.openaiBaseURL,
      ...BUDGET,
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
    ok = true;
    return report(mock.requests, {
      rows,
      textTokens,
      seconds: backfill.seconds,
      processed: backfill.result.processed,
      window: options.window,
      batchSize: options.batchSize,
      plan,
    });
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await connection.close();
    await mock.close();
    forgetMock();
    if (ok) await rm(logDir, { recursive: true, force: true });
    else ctx.log(`worker logs kept in ${logDir}`);
  }
}

/** What the worker logged of its plan for the openai queue ("embedding queue paced"). */
interface PacedPlan {
  activitiesPerSecond?: number;
  tokensPerRequest?: number;
}

async function pacedPlan(worker: Service | undefined): Promise<PacedPlan | undefined> {
  if (!worker) return undefined;
  const lines = (await readFile(worker.logFile, 'utf8').catch(() => '')).split('\n');
  for (const line of lines) {
    if (!line.includes('"embedding queue paced"') || !line.includes('"openai"')) continue;
    const { activitiesPerSecond, tokensPerRequest } = JSON.parse(line) as PacedPlan;
    return { activitiesPerSecond, tokensPerRequest };
  }
  return undefined;
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

function report(
  requests: readonly RecordedRequest[],
  run: {
    rows: number;
    textTokens: number;
    seconds: number;
    processed: number;
    window: number | undefined;
    batchSize: number | undefined;
    plan: PacedPlan | undefined;
  },
): BenchReport {
  const answers: Answer[] = requests
    .filter((r) => r.api === 'openai')
    .map((r) => ({
      at: r.at,
      status: r.status,
      tokens: r.status === 200 ? r.inputs.reduce((s, t) => s + countTokens(t), 0) : 0,
    }));
  const accepted = answers.filter((a) => a.status === 200);
  const limited = answers.filter((a) => a.status === 429).length;
  const other = answers.length - accepted.length - limited;
  if (accepted.length === 0) throw new Error('the mock accepted no request');
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
  const steadyTokensPerMinute = perMinute(steadyFrom, steadyTo);
  const share = steadyTokensPerMinute / BUDGET.tokensPerMinute;
  const limitedShare = limited / answers.length;
  const steadyRequests = accepted.filter((a) => a.at >= steadyFrom && a.at < steadyTo).length;
  const steadyRequestsPerMinute = (steadyRequests * 60_000) / Math.max(1, steadyTo - steadyFrom);
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
  const meanTokensPerRequest = totalTokens / accepted.length;
  const busiest = busiestMinute(accepted);
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
    },
    figures: [
      {
        label: 'tokens/min, steady part (mock’s accounting)',
        value: `${Math.round(steadyTokensPerMinute).toLocaleString('en-US')} = ${round(share * 100)} % of budget`,
        aim: '≥ 90 % of budget',
        met: share >= AIMS.budgetShare,
      },
      {
        label: 'requests answered 429',
        value: `${limited} of ${answers.length} = ${round(limitedShare * 100, 2)} %`,
        aim: '≤ 1 %',
        met: limitedShare <= AIMS.rateLimitedShare,
      },
      {
        label: 'most tokens in any 60 s',
        value: `${busiest.toLocaleString('en-US')} = ${round((busiest / BUDGET.tokensPerMinute) * 100)} % of budget`,
      },
      {
        label: 'tokens/min, first to last request',
        value: `${Math.round(perMinute(first, last + 1)).toLocaleString('en-US')} = ${round((perMinute(first, last + 1) / BUDGET.tokensPerMinute) * 100)} % of budget`,
      },
      {
        label: 'requests/min, steady part',
        value: `${Math.round(steadyRequestsPerMinute)} (budget ${BUDGET.requestsPerMinute})`,
      },
      {
        label: 'tokens per accepted request',
        value: `${Math.round(meanTokensPerRequest)} (plan: ${run.plan?.tokensPerRequest?.toLocaleString('en-US') ?? '?'} at most, ${run.plan?.activitiesPerSecond === undefined ? '?' : round(run.plan.activitiesPerSecond * 60)} requests/min)`,
      },
      {
        label: 'backfill',
        value: `${run.processed.toLocaleString('en-US')} rows, ${totalTokens.toLocaleString('en-US')} tokens in ${round(run.seconds)} s`,
      },
    ],
    tables: [
      {
        title: `Every ${BUCKET_MS / 1000} s from the first request`,
        columns: ['seconds', 'accepted', '429', 'tokens/min', 'of budget'],
        rows: buckets,
      },
    ],
    data: {
      seconds: round(run.seconds, 2),
      processed: run.processed,
      requests: answers.length,
      accepted: accepted.length,
      rateLimited: limited,
      otherErrors: other,
      totalTokens,
      steady: {
        fromS: round((steadyFrom - first) / 1000),
        toS: round((steadyTo - first) / 1000),
        tokensPerMinute: Math.round(steadyTokensPerMinute),
        requestsPerMinute: Math.round(steadyRequestsPerMinute),
        budgetShare: round(share, 4),
      },
      rateLimitedShare: round(limitedShare, 5),
      meanTokensPerRequest: round(meanTokensPerRequest),
      busiestMinuteTokens: busiest,
      plan: run.plan ?? null,
    },
    notes: [
      `The mock provider runs in the benchmark's process and keeps the budgets as token buckets per model (refilled continuously, starting full); a request over either is answered 429 with retry-after. Tokens are counted from the mock's record of every request it answered (cl100k, as OpenAI counts them).`,
      `Steady part: from ${EDGE_MS / 1000} s after the first accepted request to ${EDGE_MS / 1000} s before the last, leaving out the workers' start on the first pages and the last batches draining.`,
      `${WORKERS} worker processes on one task queue, started as \`npm run worker\` starts them. They set the openai embedding queue's rate on the Temporal server from the pipeline's requests per minute, and every request takes its turn from the requests and tokens buckets in embedsync.rate_buckets (each refilled at its budget's rate, holding at most one second of it) before it is sent.`,
      'Each row is "Product: Item <n>" and a description of about the given number of one-token words; the default chunk size (2,000 tokens) keeps every row one chunk.',
    ],
  };
}
