// Deadlines here bound a hang; they do not time the code. EMBEDSYNC_TEST_PATIENCE stretches them
// all (npm run test:loaded sets 3, for a machine kept busy at twice its cores).
const PATIENCE = Math.max(1, Number(process.env.EMBEDSYNC_TEST_PATIENCE ?? 1) || 1);

/**
 * Polls until check() returns a value other than undefined/false, or fails after timeoutMs with
 * what it saw.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  everyMs = 25,
): Promise<T> {
  const limit = timeoutMs * PATIENCE;
  const deadline = Date.now() + limit;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${limit} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
