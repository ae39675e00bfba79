// The batches of a table walk in flight, in key order (docs/architecture.md, decision 7). Batches
// finish in any order; the walk may record as its cursor only the last key of the longest run of
// finished batches from the start, so that a walk resumed from the cursor skips nothing. Pure, so
// the rule is tested without Temporal.

interface Slot {
  last: string;
  rows: number;
  done: boolean;
}

export class BatchWindow {
  private readonly slots: Slot[] = [];
  /** Rows of finished batches, in or beyond the finished run. */
  private finished = 0;
  private running = 0;
  /** Where the finished run from the start ends, and its last key. */
  private runEnd = 0;
  private runCursor: string | null = null;

  /** Batches launched and not yet finished. */
  get inFlight(): number {
    return this.running;
  }

  /** Rows of every finished batch, wherever it is. */
  get finishedRows(): number {
    return this.finished;
  }

  /** A batch of `keys` (in key order, after every earlier batch's) starts; returns its slot. */
  launch(keys: readonly string[]): number {
    const last = keys[keys.length - 1];
    if (last === undefined) throw new Error('a batch has at least one key');
    this.slots.push({ last, rows: keys.length, done: false });
    this.running += 1;
    return this.slots.length - 1;
  }

  finish(slot: number): void {
    const s = this.slots[slot];
    if (!s || s.done) return;
    s.done = true;
    this.running -= 1;
    this.finished += s.rows;
  }

  /**
   * The cursor every earlier key is done up to, and how many batches that run holds; null when
   * no batch from the start has finished.
   */
  finishedRun(): { cursor: string | null; batches: number } {
    for (let s = this.slots[this.runEnd]; s?.done; s = this.slots[this.runEnd]) {
      this.runCursor = s.last;
      this.runEnd += 1;
    }
    return { cursor: this.runCursor, batches: this.runEnd };
  }
}
