// A column pipeline's write skips source rows another transaction holds (docs/architecture.md,
// decision 18): it never waits on a user's row lock. The rows it skipped are written again shortly,
// a few times with a growing pause, and if a user's transaction still holds them the activity fails
// retryably, its vectors kept where they were staged, for Temporal's retry to write them.

/** Tries of the write in one activity attempt, and the first pause between them. */
export const BUSY_ATTEMPTS = 6;
const FIRST_PAUSE_MS = 50;
const MAX_PAUSE_MS = 1000;

export class RowsBusyError extends Error {
  constructor(
    readonly pipeline: string,
    readonly rows: number,
  ) {
    super(
      `${rows} row(s) of pipeline ${pipeline} stayed locked by other transactions through ${BUSY_ATTEMPTS} tries; their vectors stay staged and the write is retried`,
    );
    this.name = 'RowsBusyError';
  }
}

/**
 * Runs `write` (one short transaction that returns how many rows it had to skip) until it skips
 * none, pausing 50 ms, 100 ms, … up to 1 s between tries.
 */
export async function writeAroundBusyRows(
  pipeline: string,
  write: () => Promise<number>,
  pause: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const busy = await write();
    if (busy === 0) return;
    if (attempt >= BUSY_ATTEMPTS) throw new RowsBusyError(pipeline, busy);
    await pause(Math.min(MAX_PAUSE_MS, FIRST_PAUSE_MS * 2 ** (attempt - 1)));
  }
}
