// A table walk's progress, counted over its running time: a pause neither slows the rate nor
// stretches the ETA, and no ETA is promised while paused. Pure arithmetic on the times it is given,
// so the walk, its progress query and the tests share it; numbers are formatted without Intl, the
// same on every worker.
import type { BackfillProgress } from './definitions.js';

/** Running and paused time of a walk. Times are milliseconds since the epoch; spans are seconds. */
export interface WalkClock {
  /**
   * Running seconds before `since`: earlier runs (before continue-as-new) and earlier spans of this
   * one.
   */
  runningSeconds: number;
  /** Paused seconds before `since`, the same way. */
  pausedSeconds: number;
  /** When the current span began. */
  since: number;
  /** The current span is a pause: it began when the pause took effect (nothing left in flight). */
  holding: boolean;
}

export interface ClockTotals {
  runningSeconds: number;
  pausedSeconds: number;
}

export function startClock(now: number, carried: Partial<ClockTotals> = {}): WalkClock {
  const { runningSeconds = 0, pausedSeconds = 0 } = carried;
  return { runningSeconds, pausedSeconds, since: now, holding: false };
}

/** The totals up to `now`, the current span included. */
export function clockTotals(c: WalkClock, now: number): ClockTotals {
  // A query may read a real clock slightly behind the workflow's: a span never counts negative.
  const span = Math.max(now - c.since, 0) / 1000;
  return c.holding
    ? { runningSeconds: c.runningSeconds, pausedSeconds: c.pausedSeconds + span }
    : { runningSeconds: c.runningSeconds + span, pausedSeconds: c.pausedSeconds };
}

/** Closes the current span at `now` and opens a paused one (`holding`) or a running one. */
export function switchClock(c: WalkClock, now: number, holding: boolean): WalkClock {
  if (c.holding === holding) return c;
  return { ...clockTotals(c, now), since: Math.max(now, c.since), holding };
}

export interface RateInput {
  processed: number;
  total: number;
  /** Rows processed when the running time began to be kept: the rate counts rows walked since. */
  timedFrom: number;
  runningSeconds: number;
  /** Asked to pause (pausing or paused): no ETA is promised. */
  paused: boolean;
}

export interface Rate {
  rowsPerSecond: number | null;
  etaSeconds: number | null;
}

/**
 * Rows per running second, and the running seconds the rest should take; null until a page is done.
 */
export function walkRate(r: RateInput): Rate {
  const done = r.processed - r.timedFrom;
  const rowsPerSecond = done > 0 && r.runningSeconds > 0 ? done / r.runningSeconds : null;
  const left = Math.max(r.total - r.processed, 0);
  return {
    rowsPerSecond,
    etaSeconds: rowsPerSecond === null || r.paused ? null : left / rowsPerSecond,
  };
}

/**
 * 1234567 → "1,234,567", whatever the worker's locale: workflow code must say the same on every
 * worker.
 */
export function groupDigits(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const digits = String(Math.abs(Math.round(n)));
  const grouped = digits.replace(/\B(?=(\d{3})+$)/g, ',');
  return Math.round(n) < 0 ? `-${grouped}` : grouped;
}

/** 1,234 rows a second; a tenth is kept below 10, where it still matters. */
export const rateText = (perSecond: number): string =>
  perSecond < 10 ? perSecond.toFixed(1) : groupDigits(perSecond);

/** "50 %": whole percent, rounded down, never above 100. */
export function percentText(done: number, total: number): string {
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : done > 0 ? 100 : 0;
  return `${pct} %`;
}

/** "about 24 s", "about 3 min", "about 2 h 05 min": an ETA is an estimate, said as one. */
export function aboutDuration(seconds: number): string {
  const s = Math.max(Math.round(seconds), 1);
  if (s < 60) return `about ${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `about ${min} min`;
  return `about ${Math.floor(min / 60)} h ${String(min % 60).padStart(2, '0')} min`;
}

/** Text a summary quotes (a key, an error): those can be long, a summary line should not be. */
export function clip(text: string, max = 40): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** What the Web UI shows as the walk's current details. */
export function walkDetails(
  p: Pick<BackfillProgress, 'phase' | 'processed' | 'total' | 'rowsPerSecond' | 'etaSeconds'>,
): string {
  const total = Math.max(p.total ?? 0, p.processed);
  const where = `${groupDigits(p.processed)} of ${groupDigits(total)} rows (${percentText(p.processed, total)})`;
  switch (p.phase) {
    case 'counting':
      return 'Counting the rows to walk';
    case 'paused':
      return `Paused at ${where}`;
    case 'pausing':
      return `Pausing at ${where}: letting the batches in flight finish`;
    case 'indexing':
      return `${where}: building the HNSW index of the vector table`;
    case 'finishing':
    case 'done':
      return `${where}: finishing`;
    default: {
      const rate = p.rowsPerSecond === null ? [] : [`${rateText(p.rowsPerSecond)} rows/s`];
      const eta =
        p.etaSeconds === null || p.processed >= total
          ? []
          : [`${aboutDuration(p.etaSeconds)} left`];
      return [where, ...rate, ...eta].join(' · ');
    }
  }
}
