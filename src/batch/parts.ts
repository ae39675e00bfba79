// How a batch-mode backfill cuts a table into parts and names their request lines: pure, so the
// limits are tested without a provider (docs/architecture.md, decision 17). The workflow imports it
// too, to decide when the next part may go.

/** Most inputs one /v1/embeddings batch file may carry, across all its lines (OpenAI's limit). */
export const MAX_BATCH_INPUTS = 50_000;
/** Largest batch input file OpenAI takes. */
export const MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024;

export interface PartSize {
  /** Texts to embed (a row's chunks). */
  inputs: number;
  tokens: number;
  /** Bytes of its request line in the JSONL file, newline included. */
  bytes: number;
}

export const EMPTY_PART: PartSize = { inputs: 0, tokens: 0, bytes: 0 };

/** What one part may carry: OpenAI's file limits, and a token budget the workflow gives it. */
export function partLimits(maxTokens: number, maxInputs = MAX_BATCH_INPUTS): PartSize {
  return {
    inputs: Math.min(maxInputs, MAX_BATCH_INPUTS),
    tokens: maxTokens,
    bytes: MAX_BATCH_FILE_BYTES,
  };
}

/**
 * Whether a row fits in a part holding `held`. An empty part takes any row, so a row larger than a
 * part's budget still goes (alone) rather than stopping the backfill.
 */
export function fits(held: PartSize, row: PartSize, limits: PartSize): boolean {
  if (held.inputs === 0) return true;
  return (
    held.inputs + row.inputs <= limits.inputs &&
    held.tokens + row.tokens <= limits.tokens &&
    held.bytes + row.bytes <= limits.bytes
  );
}

export const addSize = (a: PartSize, b: PartSize): PartSize => ({
  inputs: a.inputs + b.inputs,
  tokens: a.tokens + b.tokens,
  bytes: a.bytes + b.bytes,
});

/**
 * A request line's custom_id: the row's place in the part's recorded keys (at most one line per
 * row, its chunks the line's inputs in order, so the chunk is the embedding's index).
 */
export const customId = (row: number): string => `row-${row}`;

/** The row a custom_id names, or undefined for one this backfill did not write. */
export function rowOf(id: string): number | undefined {
  const m = /^row-(\d+)$/.exec(id);
  return m ? Number(m[1]) : undefined;
}

/** A part's name in its provider batch's metadata: unique per database, backfill and attempt. */
export const partName = (
  instance: string,
  backfill: string,
  part: number,
  attempt: number,
): string => `${instance}/${backfill}/${part}/${attempt}`;

/** The metadata key the part's name is stored under. */
export const PART_METADATA_KEY = 'embedsync_part';

/**
 * The token budget for the next part, or 0 if none may be submitted now: a new part is only
 * submitted while the tokens of the parts in flight and its own fit in the account's enqueued-token
 * limit, and it takes at most `partTokens` (default: the whole limit, so parts run in turn).
 */
export function nextPartBudget(
  inFlightTokens: number,
  enqueuedTokenLimit: number,
  partTokens = enqueuedTokenLimit,
): number {
  const free = enqueuedTokenLimit - inFlightTokens;
  const wanted = Math.min(partTokens, enqueuedTokenLimit);
  // Nothing in flight: the whole part goes, however large its one row may be (see fits).
  if (inFlightTokens === 0) return wanted;
  return free >= wanted ? wanted : 0;
}
