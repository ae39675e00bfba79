// An open-loop load: operation i is due at start + i / rate whatever happened to the ones before,
// so a slow commit does not quietly lower the offered rate (a closed loop would hide exactly that).
import { now, sleep } from './clock.js';

export interface OpenLoopResult {
  /** When the first operation was due and when the last one finished. */
  startedAt: number;
  finishedAt: number;
  /** Operations that completed / failed. */
  completed: number;
  failed: number;
  /** Worst lateness of an operation's start against its schedule: how well the rate was held. */
  maxStartLagMs: number;
  firstError: string | undefined;
}

export async function runOpenLoop(
  rate: number,
  count: number,
  operation: (i: number) => Promise<void>,
): Promise<OpenLoopResult> {
  const startedAt = now();
  const inflight = new Set<Promise<void>>();
  let completed = 0;
  let failed = 0;
  let maxStartLagMs = 0;
  let firstError: string | undefined;
  for (let i = 0; i < count; i += 1) {
    const due = startedAt + (i * 1000) / rate;
    await sleep(due - now());
    maxStartLagMs = Math.max(maxStartLagMs, now() - due);
    const op = operation(i).then(
      () => void (completed += 1),
      (err: unknown) => {
        failed += 1;
        firstError ??= err instanceof Error ? err.message : String(err);
      },
    );
    inflight.add(op);
    void op.finally(() => inflight.delete(op));
  }
  await Promise.all(inflight);
  return { startedAt, finishedAt: now(), completed, failed, maxStartLagMs, firstError };
}
