// Commit → vector latency for either system of the `peers` benchmark: single-row INSERTs offered at
// a steady rate (open loop), each timed from its commit to the moment a watcher first reads its
// vector. The vector table is anything with text `pk` and integer `chunk_index` columns (a view
// over pgai's table gives it those).
import { createPool } from '../../src/db/pool.js';
import { now } from './clock.js';
import { runOpenLoop } from './load.js';
import { distribution, type Distribution } from './stats.js';
import { VisibilityWatcher } from './watcher.js';

const WARMUP_ROWS = 10;
/** How long, after the last insert, rows may still take to appear before they count as unseen. */
const DRAIN_TIMEOUT_MS = 30_000;

export interface LatencyRun {
  latencyMs: Distribution;
  unseen: number;
}

export async function measureLatency(
  databaseUrl: string,
  sourceTable: string,
  vectorTable: string,
  load: { rate: number; duration: number },
): Promise<LatencyRun> {
  const writers = createPool(databaseUrl, { max: 4, applicationName: 'bench-writer' });
  const watcher = new VisibilityWatcher(databaseUrl, vectorTable);
  try {
    await watcher.start();
    let n = 0;
    const insert = async (): Promise<void> => {
      n += 1;
      const { rows } = await writers.query<{ pk: string }>(
        `insert into ${sourceTable} (name, description, category, price, in_stock)
         values ($1, $2, 'live', 10, true) returning id::text as pk`,
        [`Live product #${n}`, `A product inserted while the benchmark watches, number ${n}.`],
      );
      watcher.expect(rows[0]?.pk ?? '', now());
    };
    // The first rows a fresh worker handles pay for its caches and connections.
    await runOpenLoop(load.rate, WARMUP_ROWS, insert);
    if ((await watcher.drain(60_000)) > 0) throw new Error('warm-up rows never got their vectors');
    watcher.take();
    const result = await runOpenLoop(load.rate, Math.round(load.rate * load.duration), insert);
    if (result.failed > 0) throw new Error(`inserts failed: ${result.firstError ?? '?'}`);
    const unseen = await watcher.drain(DRAIN_TIMEOUT_MS);
    const latencyMs = distribution(watcher.take().map((s) => s.visibleAt - s.committedAt));
    return { latencyMs, unseen };
  } finally {
    await watcher.stop().catch(() => undefined);
    await writers.end();
  }
}
