import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextPollDelay } from '../../src/poller/pace.js';

const pace = { busyIntervalMs: 10, busyHoldMs: 30, idleIntervalMs: 100 };

describe('how long the poller waits before its next look', () => {
  it('looks again after the busy interval when a look found changes, however long it had waited', () => {
    assert.equal(nextPollDelay(100, 3, pace), 10);
    assert.equal(nextPollDelay(10, 1, pace), 10);
  });

  it('keeps to the busy interval for the busy hold, then doubles the wait after each look that finds nothing, up to the idle interval', () => {
    const waits: number[] = [];
    let wait = nextPollDelay(100, 1, pace, 0);
    for (let empty = 1; empty <= 9; empty += 1) {
      wait = nextPollDelay(wait, 0, pace, empty);
      waits.push(wait);
    }
    assert.deepEqual(waits, [10, 10, 10, 20, 40, 80, 100, 100, 100]);
  });

  it('starts the busy hold afresh at every look that finds changes', () => {
    assert.equal(nextPollDelay(40, 0, pace, 4), 80);
    assert.equal(nextPollDelay(80, 2, pace, 0), 10);
    assert.equal(nextPollDelay(10, 0, pace, 1), 10);
  });

  it('never waits longer than the idle interval, even with a longer busy interval', () => {
    const slow = { busyIntervalMs: 500, busyHoldMs: 0, idleIntervalMs: 100 };
    assert.equal(nextPollDelay(100, 2, slow), 100);
    assert.equal(nextPollDelay(100, 0, slow), 100);
  });
});
