// Keeps the machine busy, for running the suites under load: worker threads spinning in this
// process, twice as many as there are cores. Being threads, not processes, they end with the
// process however it ends (a crash, a signal, process.exit), so a hog can never outlive the run
// that started it.
import os from 'node:os';
import { Worker } from 'node:worker_threads';

export interface CpuHog {
  threads: number;
  stop(): Promise<void>;
}

const SPIN = 'for (;;) { Math.sqrt(Math.random()); }';

export function startCpuHog(threads = 2 * os.availableParallelism()): CpuHog {
  const workers = Array.from({ length: threads }, () => {
    const worker = new Worker(SPIN, { eval: true });
    // A spinning thread must not keep the process alive on its own.
    worker.unref();
    return worker;
  });
  let stopped: Promise<void> | undefined;
  return {
    threads,
    stop: () => (stopped ??= Promise.all(workers.map((w) => w.terminate())).then(() => undefined)),
  };
}
