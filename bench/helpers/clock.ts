// One clock for every timestamp a benchmark takes: epoch milliseconds with sub-millisecond
// resolution, monotonic within a run, and comparable with Temporal's event times (same machine,
// same epoch).
export const now = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
