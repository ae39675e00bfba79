// How long the poller waits before its next look at the outbox: briefly while changes are flowing,
// longer as the outbox stays empty. The look is an index probe, and no NOTIFY can wake the poller
// when a change commits (docs/architecture.md, decision 3), so while changes flow the poller looks
// often; once they stop it backs off to its idle interval.

export interface PollPace {
  /** The wait after a look that found changes. */
  busyIntervalMs: number;
  /** The longest wait: each look that finds nothing doubles the wait, up to this. */
  idleIntervalMs: number;
}

/** The wait before the next look, after a look that waited `previousMs` and found `claimed` rows. */
export function nextPollDelay(previousMs: number, claimed: number, pace: PollPace): number {
  const busy = Math.min(pace.busyIntervalMs, pace.idleIntervalMs);
  if (claimed > 0) return busy;
  return Math.min(Math.max(previousMs * 2, busy), pace.idleIntervalMs);
}
