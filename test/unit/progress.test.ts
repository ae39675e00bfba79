// A walk's progress arithmetic, driven by an injected clock: pauses do not count as running time,
// no ETA is promised while paused, totals follow rows added or removed meanwhile, and numbers read
// the same on every worker.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { totalAfterCount } from '../../activities/backfill.js';
import {
  aboutDuration,
  clip,
  clockTotals,
  groupDigits,
  percentText,
  startClock,
  switchClock,
  walkDetails,
  walkRate,
} from '../../workflows/progress.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const at = (seconds: number): number => T0 + seconds * 1000;

describe('running time and rate of a walk', () => {
  it('run 60 s, pause 10 min, resume, run 30 s: the rate is rows over 90 s', () => {
    let clock = startClock(at(0));
    clock = switchClock(clock, at(60), true); // the pause takes effect
    clock = switchClock(clock, at(660), false); // resumed ten minutes later
    const times = clockTotals(clock, at(690));
    assert.deepEqual(times, { runningSeconds: 90, pausedSeconds: 600 });
    const { runningSeconds } = times;
    const rate = walkRate({
      processed: 9000,
      total: 18_000,
      timedFrom: 0,
      runningSeconds,
      paused: false,
    });
    assert.equal(rate.rowsPerSecond, 100);
    assert.equal(rate.etaSeconds, 90);
  });

  it('while paused the running time stands still and there is no ETA; the rate stays what it was', () => {
    let clock = startClock(at(0));
    clock = switchClock(clock, at(60), true);
    const early = clockTotals(clock, at(120));
    const late = clockTotals(clock, at(600));
    assert.equal(early.runningSeconds, 60);
    assert.equal(late.runningSeconds, 60);
    assert.equal(late.pausedSeconds, 540);
    const rate = walkRate({
      processed: 6000,
      total: 60_000,
      timedFrom: 0,
      runningSeconds: 60,
      paused: true,
    });
    assert.equal(rate.rowsPerSecond, 100);
    assert.equal(rate.etaSeconds, null);
  });

  it('asked to pause but still finishing the batches in flight: still running time, but no ETA', () => {
    const clock = startClock(at(0));
    const times = clockTotals(clock, at(30));
    assert.equal(times.runningSeconds, 30);
    const rate = walkRate({
      processed: 300,
      total: 600,
      timedFrom: 0,
      runningSeconds: 30,
      paused: true,
    });
    assert.equal(rate.etaSeconds, null);
  });

  it('carries the running and paused seconds across continue-as-new', () => {
    let first = startClock(at(0));
    first = switchClock(first, at(50), true);
    first = switchClock(first, at(250), false);
    const carried = clockTotals(first, at(300)); // continue-as-new: 100 s running, 200 s paused
    const second = startClock(at(301), carried);
    assert.deepEqual(clockTotals(second, at(341)), { runningSeconds: 140, pausedSeconds: 200 });
  });

  it('pausing or resuming twice changes nothing, and a clock read before the span began counts nothing', () => {
    let clock = startClock(at(10));
    clock = switchClock(clock, at(20), false);
    assert.deepEqual(clockTotals(clock, at(5)), { runningSeconds: 0, pausedSeconds: 0 });
    clock = switchClock(clock, at(20), true);
    clock = switchClock(clock, at(40), true);
    assert.deepEqual(clockTotals(clock, at(40)), { runningSeconds: 10, pausedSeconds: 20 });
  });

  it('a run carried from before the running time was kept counts only the rows walked since', () => {
    const rate = walkRate({
      processed: 5000,
      total: 10_000,
      timedFrom: 4000,
      runningSeconds: 10,
      paused: false,
    });
    assert.equal(rate.rowsPerSecond, 100);
    assert.equal(rate.etaSeconds, 50);
  });

  it('no rate and no ETA before the first page, nor with no running time', () => {
    const none = { rowsPerSecond: null, etaSeconds: null };
    assert.deepEqual(
      walkRate({ processed: 0, total: 100, timedFrom: 0, runningSeconds: 12, paused: false }),
      none,
    );
    assert.deepEqual(
      walkRate({ processed: 10, total: 100, timedFrom: 0, runningSeconds: 0, paused: false }),
      none,
    );
  });

  it('past the total the ETA is zero, never negative', () => {
    const rate = walkRate({
      processed: 120,
      total: 100,
      timedFrom: 0,
      runningSeconds: 12,
      paused: false,
    });
    assert.equal(rate.etaSeconds, 0);
  });
});

describe('the total of a walk', () => {
  it('near the end, what the count ahead finds makes it exact: rows added or removed meanwhile included', () => {
    // Counted 50,000 at the start; 683 were added ahead of the cursor since.
    assert.equal(totalAfterCount(50_000, 49_500, 1183, 4000), 50_683);
    // 300 were removed ahead of the cursor.
    assert.equal(totalAfterCount(50_000, 49_500, 200, 4000), 49_700);
    assert.equal(totalAfterCount(50_000, 50_683, 0, 4000), 50_683);
  });

  it('far from the end it keeps the estimate, raised once the walk has gone past it', () => {
    assert.equal(totalAfterCount(50_000, 10_000, 4000, 4000), 50_000);
    assert.equal(totalAfterCount(50_000, 48_000, 4000, 4000), 52_000);
  });
});

describe('numbers in workflow text', () => {
  it('groups thousands with commas whatever the locale', () => {
    assert.equal(groupDigits(0), '0');
    assert.equal(groupDigits(999), '999');
    assert.equal(groupDigits(1000), '1,000');
    assert.equal(groupDigits(60_201), '60,201');
    assert.equal(groupDigits(1_234_567.6), '1,234,568');
    assert.equal(groupDigits(-1234), '-1,234');
  });

  it('says percentages rounded down, never above 100', () => {
    assert.equal(percentText(30_400, 60_201), '50 %');
    assert.equal(percentText(60_200, 60_201), '99 %');
    assert.equal(percentText(60_201, 60_201), '100 %');
    assert.equal(percentText(70_000, 60_201), '100 %');
    assert.equal(percentText(0, 0), '0 %');
  });

  it('says an ETA as the estimate it is', () => {
    assert.equal(aboutDuration(0.2), 'about 1 s');
    assert.equal(aboutDuration(24.4), 'about 24 s');
    assert.equal(aboutDuration(460), 'about 8 min');
    assert.equal(aboutDuration(2 * 3600 + 5 * 60), 'about 2 h 05 min');
  });

  it('clips long keys and errors quoted in summaries', () => {
    assert.equal(clip('12345'), '12345');
    assert.equal(clip('x'.repeat(50), 10), `${'x'.repeat(9)}…`);
  });
});

describe('the current details the Web UI shows', () => {
  const base = { processed: 30_400, total: 60_201, rowsPerSecond: 1234.4, etaSeconds: 24.2 };

  it('while running: where, how fast, how long left', () => {
    const running = { ...base, phase: 'running' as const };
    assert.equal(
      walkDetails(running),
      '30,400 of 60,201 rows (50 %) · 1,234 rows/s · about 24 s left',
    );
    assert.equal(
      walkDetails({ ...running, rowsPerSecond: 2.5, etaSeconds: 12_000 }),
      '30,400 of 60,201 rows (50 %) · 2.5 rows/s · about 3 h 20 min left',
    );
    assert.equal(
      walkDetails({ ...running, rowsPerSecond: null, etaSeconds: null }),
      '30,400 of 60,201 rows (50 %)',
    );
  });

  it('while paused or pausing: where it holds, and no ETA', () => {
    assert.equal(
      walkDetails({ ...base, phase: 'paused', etaSeconds: null }),
      'Paused at 30,400 of 60,201 rows (50 %)',
    );
    const pausing = walkDetails({ ...base, phase: 'pausing', etaSeconds: null });
    assert.match(pausing, /^Pausing at 30,400 of 60,201 rows \(50 %\): /);
  });

  it('never says more rows done than there are', () => {
    const past = walkDetails({
      ...base,
      phase: 'running',
      processed: 50_683,
      total: 50_000,
      etaSeconds: 0,
    });
    assert.equal(past, '50,683 of 50,683 rows (100 %) · 1,234 rows/s');
  });
});
