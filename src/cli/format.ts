// How the commands print numbers, durations and backfill progress, so every command reads alike.
import type { BackfillProgress } from '../../workflows/definitions.js';

export const count = (n: number): string => Math.round(n).toLocaleString('en-US');

export const plural = (n: number, one: string, many = `${one}s`): string =>
  `${count(n)} ${n === 1 ? one : many}`;

/** 4 s, 2 min 05 s, 3 h 12 min: short enough for a progress line, exact enough to plan by. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  if (s < 86_400)
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

export const rate = (perSecond: number | null): string =>
  perSecond === null ? '… rows/s' : `${count(perSecond)} rows/s`;

export const percent = (done: number, total: number | null): string =>
  total ? `${Math.min(100, Math.floor((done / total) * 100))}%` : '';

/** Where a backfill is, how fast it goes, when it should be done: for pipes, logs and status. */
export function progressText(pipeline: string, p: BackfillProgress, fallbackTotal: number): string {
  // Rows added during the walk can take it past the count it started from: never more done than in
  // all.
  const total = Math.max(p.total ?? fallbackTotal, p.processed);
  const head = `${count(p.processed)} of ${count(total)} rows (${percent(p.processed, total) || '0%'})`;
  switch (p.phase) {
    case 'counting':
      return 'counting source rows…';
    case 'pausing':
      return `${head}, pausing once the batches in flight finish`;
    case 'paused':
      return `${head}, paused (npx embedsync resume --table ${pipeline})`;
    case 'indexing':
      return `${head}, building the vector table's HNSW index`;
    case 'finishing':
    case 'done':
      return `${head}, finishing`;
    default:
      return `${head}, ${rate(p.rowsPerSecond)}, ETA ${p.etaSeconds === null ? '…' : duration(p.etaSeconds)}`;
  }
}

/**
 * How long a finished walk took and how fast it went, over its running time: "in 12 min 30 s of
 * running (67 rows/s; paused 10 min 00 s)". Empty for a result from a worker that did not keep the
 * time.
 */
export function ranFor(r: {
  processed: number;
  runningSeconds?: number;
  pausedSeconds?: number;
}): string {
  if (r.runningSeconds === undefined) return '';
  const paused = r.pausedSeconds ? `; paused ${duration(r.pausedSeconds)}` : '';
  const perSecond = rate(r.processed / Math.max(r.runningSeconds, 0.001));
  return ` in ${duration(r.runningSeconds)} of running (${perSecond}${paused})`;
}

/** US dollars: cents from a dollar up, two significant digits below (token prices are small). */
export function money(dollars: number): string {
  if (dollars === 0) return '$0';
  if (dollars >= 1)
    return `$${dollars.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const places = Math.min(12, Math.max(2, 1 - Math.floor(Math.log10(dollars))));
  return `$${dollars.toFixed(places)}`;
}
