// Watches for vector rows to become visible, from the client side: every few milliseconds it asks
// which of the still-pending keys have a chunk 0, on a connection of its own. Asking for the
// pending keys (not "embedded_at > last seen") matters: embedded_at is now() of the write
// transaction, i.e. its start, and transactions commit out of start order, so a high-water mark
// would miss rows.
import pg from 'pg';
import { now, sleep } from './clock.js';

export interface Sighting {
  pk: string;
  committedAt: number;
  visibleAt: number;
}

export class VisibilityWatcher {
  private readonly client: pg.Client;
  private readonly pending = new Map<string, number>();
  private readonly seen: Sighting[] = [];
  private running: Promise<void> | undefined;
  private stopped = false;
  private polls = 0;
  private pollMs = 0;
  private failure: Error | undefined;

  /** `vectorTable` must already be quoted and qualified. */
  constructor(
    databaseUrl: string,
    private readonly vectorTable: string,
    private readonly intervalMs = 5,
  ) {
    this.client = new pg.Client({
      connectionString: databaseUrl,
      application_name: 'bench-watcher',
    });
    // A dropped connection fails the next poll, which is reported; unhandled, it would kill the
    // process.
    this.client.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await this.client.connect();
    // Kept, not thrown: drain() reports it, so the run stops cleanly instead of crashing mid-load.
    this.running = this.loop().catch((err: unknown) => {
      this.failure = err instanceof Error ? err : new Error(String(err));
    });
  }

  /** Call when the write that created `pk` has committed. */
  expect(pk: string, committedAt: number): void {
    this.pending.set(pk, committedAt);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Waits until nothing is pending or timeoutMs has passed; returns how many are still pending. */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = now() + timeoutMs;
    while (this.pending.size > 0 && now() < deadline && !this.failure) await sleep(20);
    if (this.failure) throw new Error(`the visibility watcher failed: ${this.failure.message}`);
    return this.pending.size;
  }

  /** Hands over (and forgets) the sightings so far; pending keys stay pending. */
  take(): Sighting[] {
    return this.seen.splice(0);
  }

  /** Mean time one poll took: the resolution of every sighting is about interval + this. */
  meanPollMs(): number {
    return this.polls ? this.pollMs / this.polls : 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    await this.client.end();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.pending.size > 0) {
        const sentAt = now();
        const { rows } = await this.client.query<{ pk: string }>(
          `select pk from ${this.vectorTable} where pk = any($1::text[]) and chunk_index = 0`,
          [[...this.pending.keys()]],
        );
        // The reply's arrival is the conservative moment: the row was visible at the latest then.
        const at = now();
        this.polls += 1;
        this.pollMs += at - sentAt;
        for (const { pk } of rows) {
          const committedAt = this.pending.get(pk);
          if (committedAt === undefined) continue;
          this.pending.delete(pk);
          this.seen.push({ pk, committedAt, visibleAt: at });
        }
      }
      await sleep(this.intervalMs);
    }
  }
}
