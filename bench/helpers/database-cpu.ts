// What a benchmark cost PostgreSQL in its own database: the CPU (user + system, from /proc) of every
// server process that served the benchmark's database while it ran — its connections and their
// parallel workers, found in pg_stat_activity as they come — so other databases' work on the same
// server does not count (bench/helpers/postgres-cpu.ts measures the whole server instead). Needs the
// server on this machine; elsewhere the figure is absent.
import { readFileSync } from 'node:fs';
import type { Pool } from '../../src/db/pool.js';

// USER_HZ: 100 on every mainstream Linux architecture.
const TICKS_PER_SECOND = 100;
const SAMPLE_EVERY_MS = 100;

function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * Starts sampling (once the processes already there are known); the returned function stops and gives the seconds of CPU the database's server
 * processes spent meanwhile (undefined if none could be read). A process that came and went between
 * two samples is missed: its share is small at 100 ms.
 */
export async function samplePostgresCpu(pool: Pool): Promise<() => Promise<number | undefined>> {
  // Per process: its CPU seconds when first seen (0 for one that started after sampling began), and
  // when last seen.
  const base = new Map<number, number>();
  const last = new Map<number, number>();
  let begun = false;
  let running = true;
  const sample = async (): Promise<void> => {
    const { rows } = await pool.query<{ pid: number }>(
      'select pid from pg_stat_activity where datname = current_database()',
    );
    for (const { pid } of rows) {
      const now = cpuSeconds(pid);
      if (now === undefined) continue;
      if (!base.has(pid)) base.set(pid, begun ? 0 : now);
      last.set(pid, now);
    }
    begun = true;
  };
  await sample();
  const loop = (async () => {
    while (running) {
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
      await sample().catch(() => undefined);
    }
  })();
  return async () => {
    running = false;
    await loop;
    await sample().catch(() => undefined);
    if (last.size === 0) return undefined;
    let total = 0;
    for (const [pid, seconds] of last) total += seconds - (base.get(pid) ?? 0);
    return Math.round(total * 100) / 100;
  };
}
