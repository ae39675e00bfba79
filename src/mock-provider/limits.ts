// Per-minute budgets as the providers keep them: a bucket that refills continuously; and how the
// mock counts the tokens they are kept in.
import { countTokens } from '../chunking/tokens.js';
import type { TokenCounting } from './types.js';

/** An input's tokens as the mock counts them (MockProviderOptions.tokenCounting). */
export function mockTokenCount(text: string, counting: TokenCounting = 'cl100k'): number {
  return counting === 'bytes/4'
    ? Math.ceil(Buffer.byteLength(text, 'utf8') / 4)
    : countTokens(text);
}

export class TokenBucket {
  private level: number;
  private updatedAt: number;

  constructor(
    readonly capacity: number,
    private readonly now: () => number = Date.now,
  ) {
    this.level = capacity;
    this.updatedAt = now();
  }

  private refill(): void {
    const t = this.now();
    this.level = Math.min(
      this.capacity,
      this.level + ((t - this.updatedAt) * this.capacity) / 60_000,
    );
    this.updatedAt = t;
  }

  remaining(): number {
    this.refill();
    return Math.floor(this.level);
  }

  /** Milliseconds until `amount` is available (0: now). */
  waitFor(amount: number): number {
    this.refill();
    return this.level >= amount ? 0 : Math.ceil(((amount - this.level) * 60_000) / this.capacity);
  }

  /** Milliseconds until the bucket is full again. */
  untilFull(): number {
    this.refill();
    return Math.ceil(((this.capacity - this.level) * 60_000) / this.capacity);
  }

  take(amount: number): void {
    this.refill();
    this.level -= amount;
  }
}

/** OpenAI's x-ratelimit-reset-* format: 120ms, 1.5s, 6m0s. */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(3))}s`;
  return `${Math.floor(ms / 60_000)}m${Number(((ms % 60_000) / 1000).toFixed(3))}s`;
}
