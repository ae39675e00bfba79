// The CPU the whole PostgreSQL server spends, read from /proc: the postmaster's own time, the time of
// the children it has already reaped (backends that ended, counted in its cutime and cstime) and
// the time of its live children (backends, autovacuum, checkpointer, walwriter, …). Whatever
// connects to the server counts, so the figure means something only while nothing else uses it.
// Linux only, and only for a server on this machine; elsewhere it is absent.
import { readdirSync, readFileSync } from 'node:fs';
import type { Pool } from '../../src/db/pool.js';

const TICKS_PER_SECOND = 100;

interface Stat {
  ppid: number;
  /** utime + stime, and cutime + cstime (reaped children), in seconds. */
  own: number;
  reaped: number;
}

function stat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const f = text
      .slice(text.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return {
      ppid: f[1] ?? 0,
      own: ((f[11] ?? 0) + (f[12] ?? 0)) / TICKS_PER_SECOND,
      reaped: ((f[13] ?? 0) + (f[14] ?? 0)) / TICKS_PER_SECOND,
    };
  } catch {
    return undefined;
  }
}

/**
 * The postmaster of the server behind the pool: the parent of this connection's backend, when that
 * backend is a process of this machine.
 */
export async function postmasterPid(pool: Pool): Promise<number | undefined> {
  const { rows } = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
  const backend = rows[0]?.pid;
  if (backend === undefined) return undefined;
  const comm = (pid: number): string => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  if (!comm(backend).startsWith('postgres')) return undefined;
  const parent = stat(backend)?.ppid;
  return parent !== undefined && comm(parent).startsWith('postgres') ? parent : undefined;
}

/** Seconds of CPU the server has used so far (see the top of the file); undefined if unreadable. */
export function postgresCpuSeconds(postmaster: number | undefined): number | undefined {
  if (postmaster === undefined) return undefined;
  const main = stat(postmaster);
  if (!main) return undefined;
  let total = main.own + main.reaped;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s?.ppid === postmaster) total += s.own;
  }
  return total;
}

/** A process's own CPU seconds plus those of its reaped children; undefined once it is gone. */
export function processTreeSeconds(pid: number | undefined): number | undefined {
  const s = pid === undefined ? undefined : stat(pid);
  return s ? s.own + s.reaped : undefined;
}
