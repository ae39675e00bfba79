// A process's resident memory, sampled from /proc while it works: the current RSS and the kernel's
// own high-water mark (VmHWM), which catches a peak that falls between two samples. Linux only.
import { readFileSync } from 'node:fs';

const SAMPLE_EVERY_MS = 200;

export interface MemorySample {
  atMs: number;
  rssMiB: number;
}

export interface MemoryUse {
  /** RSS when sampling began (the worker idle after start-up). */
  startMiB: number;
  /** The largest of the kernel's high-water mark and every RSS sample. */
  peakMiB: number;
  /** RSS when sampling stopped. */
  endMiB: number;
  samples: MemorySample[];
}

function readStatus(pid: number): { rssKiB: number; hwmKiB: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): number =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
  } catch {
    return undefined;
  }
}

const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

/** Samples every ~200 ms until the returned function is called; that returns what was seen. */
export function sampleMemory(pid: number | undefined): () => MemoryUse | undefined {
  if (pid === undefined || !readStatus(pid)) return () => undefined;
  const started = Date.now();
  const samples: MemorySample[] = [];
  let hwmKiB = 0;
  const take = (): void => {
    const s = readStatus(pid);
    if (!s) return;
    hwmKiB = Math.max(hwmKiB, s.hwmKiB);
    samples.push({ atMs: Date.now() - started, rssMiB: mib(s.rssKiB) });
  };
  take();
  const timer = setInterval(take, SAMPLE_EVERY_MS);
  return () => {
    clearInterval(timer);
    take();
    if (samples.length === 0) return undefined;
    const peak = Math.max(mib(hwmKiB), ...samples.map((s) => s.rssMiB));
    return {
      startMiB: samples[0]?.rssMiB ?? 0,
      peakMiB: peak,
      endMiB: samples[samples.length - 1]?.rssMiB ?? 0,
      samples,
    };
  };
}

/** Every nth sample, so a results file keeps the shape of the curve without thousands of points. */
export function thin(samples: readonly MemorySample[], most = 120): MemorySample[] {
  const step = Math.max(1, Math.ceil(samples.length / most));
  return samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
}

/**
 * The highest RSS sampled in the first `share` of a run and in the rest of it: memory that grows with
 * the work done shows as the second above the first, where a short run against a long one mixes in
 * the process warming up.
 */
export function peaksBeforeAndAfter(
  samples: readonly MemorySample[],
  share: number,
): { before: number; after: number } | undefined {
  const last = samples[samples.length - 1];
  if (!last) return undefined;
  const cut = last.atMs * share;
  const peak = (xs: readonly MemorySample[]): number => Math.max(...xs.map((s) => s.rssMiB));
  const before = samples.filter((s) => s.atMs <= cut);
  const after = samples.filter((s) => s.atMs > cut);
  if (before.length === 0 || after.length === 0) return undefined;
  return { before: peak(before), after: peak(after) };
}
