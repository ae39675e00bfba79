import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextPollDelay } from '../../src/poller/pace.js';

const pace = { busyIntervalMs: 10, idleIntervalMs: 100 };

describe('how long the poller waits before its next look', () => {
  it('looks again after the busy interval when a look found changes, however long it had waited', () => {
    assert.equal(nextPollDelay(100, 3, pace), 10);
    assert.equal(nextPollDelay(10, 1, pace), 10);
  });

  it('doubles the wait after each look that finds nothing, up to the idle interval', () => {
    const waits: number[] = [];
    let wait = nextPollDelay(100, 1, pace);
    for (let i = 0; i < 6; i += 1) {
      wait = nextPollDelay(wait, 0, pace);
      waits.push(wait);
    }
    assert.deepEqual(waits, [20, 40, 80, 100, 100, 100]);
  });

  it('never waits longer than the idle interval, even with a longer busy interval', () => {
    const slow = { busyIntervalMs: 500, idleIntervalMs: 100 };
    assert.equal(nextPollDelay(100, 2, slow), 100);
    assert.equal(nextPollDelay(100, 0, slow), 100);
  });
});
