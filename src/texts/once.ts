// A text is embedded once (docs/architecture.md, decision 16): which texts of a request to send,
// which to reuse and which to wait for, decided from one look at embedsync.embedded_texts. Pure,
// so it is tested without a database; the queries are src/db/embedded-texts.ts, the activity side
// activities/embed-once.ts.
import { createHash } from 'node:crypto';

/**
 * A text's key: sha256 of the settings that decide its vector (vectorSettings in
 * src/config/pipeline.ts) and its exact text, in hex.
 */
export function textKey(settings: string, chunk: string): string {
  return createHash('sha256').update(settings).update('\u0000').update(chunk).digest('hex');
}

/** What one claim found for a key (src/db/embedded-texts.ts, claimTexts). */
export interface TextLook {
  key: string;
  /** This batch holds the lease now: it is to send the text. */
  claimed: boolean;
  /** The vector (pgvector's text form), when some batch has embedded the text already. */
  embedding: string | null;
}

export interface TextDecision {
  /** Keys this batch claimed: sent in its request. */
  send: string[];
  /** Keys whose vector is known: not sent, reused. */
  reuse: Map<string, string>;
  /** Keys another batch holds the lease on: waited for. */
  wait: string[];
}

/**
 * Splits the keys by what the claim found. A key the claim neither took nor saw is being inserted by
 * another batch at this very moment (its row was not yet visible): it is waited for like a leased one.
 */
export function decideTexts(keys: Iterable<string>, looks: readonly TextLook[]): TextDecision {
  const byKey = new Map(looks.map((l) => [l.key, l]));
  const decision: TextDecision = { send: [], reuse: new Map(), wait: [] };
  for (const key of new Set(keys)) {
    const look = byKey.get(key);
    if (look?.claimed) decision.send.push(key);
    else if (look?.embedding != null) decision.reuse.set(key, look.embedding);
    else decision.wait.push(key);
  }
  return decision;
}

/** The first wait for a text another batch is embedding: about one provider round trip. */
export const FIRST_LOOK_MS = 50;
/** The longest wait between two looks. */
export const LONGEST_LOOK_MS = 1000;

/**
 * How long to wait before the next look at texts another batch holds, or undefined once the waits
 * add up to twice the lease: by then every lease that was held has expired and been taken over at a
 * look, so a text still held is held by a batch that took it over, and the caller gives up (its
 * activity retries) rather than waiting on without end. Counted in waits, not on the clock.
 */
export function nextLook(waitedMs: number, lastMs: number, leaseMs: number): number | undefined {
  if (waitedMs >= 2 * leaseMs) return undefined;
  return Math.min(lastMs === 0 ? FIRST_LOOK_MS : lastMs * 2, LONGEST_LOOK_MS);
}
