// What an interrupted run (Ctrl-C, SIGTERM) must still undo: stop the worker and poller it started,
// terminate its sync workflows, drop its database. Each piece registers its own undo while it
// lives.
type Cleanup = () => Promise<unknown>;

const cleanups = new Set<Cleanup>();

/**
 * Registers fn to run on interrupt; call the returned function once the normal path has done it.
 */
export function onInterrupt(fn: Cleanup): () => void {
  cleanups.add(fn);
  return () => void cleanups.delete(fn);
}

const withTimeout = (p: Promise<unknown>, ms: number): Promise<unknown> =>
  Promise.race([
    p.catch(() => undefined),
    new Promise((resolve) => setTimeout(resolve, ms).unref()),
  ]);

export function handleInterrupts(log: (line: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up what this run started`);
      void (async () => {
        // Newest first: workflows and services before the database they use.
        for (const fn of [...cleanups].reverse()) await withTimeout(fn(), 10_000);
        process.exit(130);
      })();
    });
  }
}
