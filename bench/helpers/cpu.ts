// Where the CPU went during a measurement: the whole machine's busy share, and each of our
// processes' share of one core. Read from /proc, so Linux only; elsewhere the figures are simply
// absent.
import { readFileSync } from 'node:fs';

// USER_HZ: 100 on every mainstream Linux architecture.
const TICKS_PER_SECOND = 100;

export interface CpuSample {
  at: number;
  /** Busy and total jiffies of all CPUs together. */
  busy: number;
  total: number;
  /** Per tracked pid: user + system seconds so far. */
  processes: Map<string, number>;
}

function machineJiffies(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((s, v) => s + v, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

function processSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND; // utime, stime
  } catch {
    return undefined;
  }
}

export function sampleCpu(pids: Record<string, number | undefined>): CpuSample | undefined {
  const machine = machineJiffies();
  if (!machine) return undefined;
  const processes = new Map<string, number>();
  for (const [name, pid] of Object.entries(pids)) {
    const seconds = pid === undefined ? undefined : processSeconds(pid);
    if (seconds !== undefined) processes.set(name, seconds);
  }
  return { at: Date.now(), ...machine, processes };
}

export interface CpuUse {
  /** Share of all CPUs that was busy (anything, ours or not), in %. */
  machineBusyPct: number;
  /** Per process, % of one core. */
  processPctOfCore: Record<string, number>;
}

export function cpuBetween(a: CpuSample | undefined, b: CpuSample | undefined): CpuUse | undefined {
  if (!a || !b || b.total === a.total) return undefined;
  const seconds = (b.at - a.at) / 1000;
  const processPctOfCore: Record<string, number> = {};
  for (const [name, end] of b.processes) {
    const start = a.processes.get(name);
    if (start !== undefined && seconds > 0)
      processPctOfCore[name] = Math.round(((end - start) / seconds) * 1000) / 10;
  }
  return {
    machineBusyPct: Math.round(((b.busy - a.busy) / (b.total - a.total)) * 1000) / 10,
    processPctOfCore,
  };
}
