// How long the poller waits before its next look at the outbox: briefly while changes are flowing,
// longer as the outbox stays empty. The look is an index probe, and no NOTIFY can wake the poller
// when a change commits (docs/architecture.md, decision 3), so while changes flow the poller looks
// often; once they stop it backs off to its idle interval.

export interface PollPace {
  /** The wait after a look that found changes, and while the busy hold lasts. */
  busyIntervalMs: number;
  /**
   * How long, in busy waits after the last look that found changes, the poller keeps looking at the
   * busy interval before it backs off: changes arriving a few per second each find it looking.
   */
  busyHoldMs: number;
  /** The longest wait: past the hold, each look that finds nothing doubles the wait, up to this. */
  idleIntervalMs: number;
}

/**
 * The wait before the next look, after a look that waited `previousMs` and found `claimed` rows;
 * `emptyLooks` is how many looks in a row (this one included) found nothing.
 */
export function nextPollDelay(
  previousMs: number,
  claimed: number,
  pace: PollPace,
  emptyLooks = claimed > 0 ? 0 : Infinity,
): number {
  const busy = Math.min(pace.busyIntervalMs, pace.idleIntervalMs);
  if (claimed > 0 || emptyLooks * busy <= pace.busyHoldMs) return busy;
  return Math.min(Math.max(previousMs * 2, busy), pace.idleIntervalMs);
}
