// What the `peers` benchmark's two systems share: the rows both embed, the mock both call, what one
// run costs (wall time, PostgreSQL's CPU, the workers' CPU, the machine's load), and the shapes of
// the measurements each system hands back.
import type { Client } from '@temporalio/client';
import type { MockProvider } from '../../src/mock-provider/server.js';
import { demoProducts } from '../../src/demo/products.js';
import type { Pool } from '../../src/db/pool.js';
import type { BenchDatabase } from './database.js';
import { now, sleep } from './clock.js';
import { cpuBetween, sampleCpu } from './cpu.js';
import type { Pgai } from './pgai.js';
import { postgresCpuSeconds, processTreeSeconds } from './postgres-cpu.js';
import type { Distribution } from './stats.js';
import type { BenchContext } from './types.js';

export const MODEL = 'text-embedding-3-small';
export const DIMENSIONS = 512;
export const MOCK_LATENCY_MS = 50;
export const TOKENS_PER_MINUTE = 1_000_000;
/** The columns kept beside each vector (embedsync) or joined back (pgai), not embedded. */
export const METADATA = ['category', 'price', 'in_stock'];

export type SystemName = 'embedsync' | 'pgai';

export interface PeerContext {
  ctx: BenchContext;
  client: Client;
  mock: MockProvider;
  /** embedsync's database is ctx.db; pgai's is a second one on the same server. */
  pgaiDb: BenchDatabase;
  pgai: Pgai;
  postmaster: number | undefined;
  logDir: string;
}

const PRODUCTS = demoProducts(500);

/** Row i of every table: a demo product, numbered so every text is distinct, as real rows are. */
export function productRow(i: number): { name: string; description: string } {
  const p = PRODUCTS[i % PRODUCTS.length] ?? { name: 'Item', description: '' };
  return { name: `${p.name} #${i}`, description: p.description };
}

export interface Usage {
  seconds: number;
  /** CPU seconds of every PostgreSQL server process over the run (undefined: not readable). */
  postgresCpuS: number | undefined;
  /** CPU seconds of the system's worker process(es). */
  workerCpuS: number | undefined;
  /** Share of all the machine's CPUs busy over the run, whoever used them. */
  machineBusyPct: number | undefined;
}

/** Starts measuring; the returned function ends the measurement (call it before the workers stop). */
export function measureUsage(
  postmaster: number | undefined,
  workerPids: ReadonlyArray<number | undefined>,
): () => Usage {
  const workers = (): number | undefined => {
    const each = workerPids.map(processTreeSeconds);
    return each.some((s) => s === undefined)
      ? undefined
      : each.reduce<number>((a, s) => a + (s ?? 0), 0);
  };
  const started = now();
  const machine = sampleCpu({});
  const pg = postgresCpuSeconds(postmaster);
  const worker = workers();
  return () => {
    const pgEnd = postgresCpuSeconds(postmaster);
    const workerEnd = workers();
    return {
      seconds: (now() - started) / 1000,
      postgresCpuS: pg === undefined || pgEnd === undefined ? undefined : pgEnd - pg,
      workerCpuS: worker === undefined || workerEnd === undefined ? undefined : workerEnd - worker,
      machineBusyPct: cpuBetween(machine, sampleCpu({}))?.machineBusyPct,
    };
  };
}

export interface ProviderCounts {
  requests: number;
  inputs: number;
  rateLimited: number;
}

/** What the mock has answered since its last reset(), from its from-th request on. */
export function providerCounts(mock: MockProvider, from = 0): ProviderCounts {
  const openai = mock.requests.slice(from).filter((r) => r.api === 'openai');
  return {
    requests: openai.length,
    inputs: openai.reduce((s, r) => s + r.inputs.length, 0),
    rateLimited: openai.filter((r) => r.status === 429).length,
  };
}

/**
 * Spends the mock's token budget, so a rate-limited run starts at the budget's steady rate rather
 * than on a full minute's worth of tokens (which would hide the limit from a run this short).
 */
export async function drainTokenBudget(mock: MockProvider): Promise<void> {
  // 50 inputs of ~5,000 one-word tokens: 250,000 tokens, under the 300,000 a request may carry.
  const input = Array.from({ length: 50 }, () => 'token '.repeat(5000));
  for (let spent = 0; spent < TOKENS_PER_MINUTE; spent += 250_000) {
    const res = await fetch(`${mock.openaiBaseURL}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      body: JSON.stringify({ model: MODEL, input, dimensions: DIMENSIONS }),
    });
    await res.arrayBuffer();
    if (res.status === 429) break;
  }
}

/** Polls check() every intervalMs until it holds; false if timeoutMs passes first. */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<boolean> {
  const deadline = now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (now() > deadline) return false;
    await sleep(intervalMs);
  }
}

export interface BackfillMeasure {
  system: SystemName;
  /** "1 worker", "concurrency 4", … */
  setting: string;
  rows: number;
  /** Until every row has its vector and the HNSW index exists. */
  seconds: number;
  rowsPerSecond: number;
  /** pgai: the index built at the end; embedsync: waiting for it after the workflow completed. */
  indexSeconds: number;
  /** embedsync: whether the index was already there when the backfill workflow completed. */
  indexDuringLoad: boolean;
  usage: Usage;
  provider: ProviderCounts;
}

export interface LiveMeasure {
  system: SystemName;
  latencyMs: Distribution;
  /** Rows whose vector never appeared within the drain time. */
  unseen: number;
  metadata: { rows: number; seconds: number; done: boolean } & ProviderCounts;
}

/** Whether `table` (qualified, quoted) has a valid HNSW index, whatever its name. */
export async function hasHnswIndex(pool: Pool, table: string): Promise<boolean> {
  const { rows } = await pool.query<{ ok: boolean }>(
    `select exists (select 1 from pg_index i
                      join pg_class c on c.oid = i.indexrelid
                      join pg_am a on a.oid = c.relam
                     where i.indrelid = $1::regclass and a.amname = 'hnsw' and i.indisvalid) as ok`,
    [table],
  );
  return rows[0]?.ok ?? false;
}
