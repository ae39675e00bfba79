// How many deliveries to sinks one worker runs at once (EMBEDSYNC_SINK_CONCURRENCY, decision 23):
// each holds a database connection while it sends. A sync's first attempt takes a slot only if one
// is free and nobody waits for it (tryTake); a delivery on the sinks' task queue waits its turn
// (take), which is short: the task queue already runs no more of them than there are slots, so it
// waits only for first attempts, each bounded by the webhook's timeout.

/**
 * Each delivery holds a database connection while it sends; a few at once leaves the worker's pool
 * (10) to its syncs whatever the sinks do. As EMBEDSYNC_SINK_CONCURRENCY's default
 * (src/config/env.ts).
 */
export const DEFAULT_SINK_CONCURRENCY = 3;

/** Gives the slot back; a second call does nothing. */
export type Release = () => void;

export class DeliverySlots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1)
      throw new Error(`slots must be at least 1, not ${size}`);
  }

  /** Deliveries holding a slot now. */
  get inUse(): number {
    return this.used;
  }

  /** A free slot, or undefined when all are taken or a delivery waits for one. */
  tryTake(): Release | undefined {
    if (this.used >= this.size || this.waiting.length > 0) return undefined;
    this.used += 1;
    return this.release();
  }

  /** The next free slot, in turn; rejects with the signal's reason if it is aborted first. */
  take(signal?: AbortSignal): Promise<Release> {
    const now = this.tryTake();
    if (now) return Promise.resolve(now);
    return new Promise<Release>((resolve, reject) => {
      const wake = (): void => {
        signal?.removeEventListener('abort', abort);
        resolve(this.release());
      };
      const abort = (): void => {
        const at = this.waiting.indexOf(wake);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(signal?.reason as Error);
      };
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
      this.waiting.push(wake);
    });
  }

  private release(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Handed straight to the next in line: the count stays.
      const next = this.waiting.shift();
      if (next) next();
      else this.used -= 1;
    };
  }
}
