// The processes a test run started, found by parentage, so that a test file stopped for running too
// long cannot leave its process (or the commands it spawned) behind when it ignores SIGTERM.
import { execFileSync } from 'node:child_process';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  args: string;
}

function processTable(): ProcessInfo[] {
  const out = execFileSync('ps', ['-A', '-o', 'pid=,ppid=,args='], { encoding: 'utf8' });
  return out.split('\n').flatMap((line) => {
    const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    return m ? [{ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] ?? '' }] : [];
  });
}

/** Every process below `root`, children before their own children. */
export function descendantsOf(root: number, table = processTable()): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (let parents = new Set([root]); parents.size > 0;) {
    const next = table.filter((p) => parents.has(p.ppid));
    found.push(...next);
    parents = new Set(next.map((p) => p.pid));
  }
  return found;
}

/**
 * SIGKILLs `process`'s children whose command line names `file` (all children without one), and
 * theirs.
 */
export function killChildren(file?: string): number[] {
  let table: ProcessInfo[];
  try {
    table = processTable();
  } catch {
    return []; // no ps: nothing more can be done than the runner's own SIGTERM
  }
  const children = table.filter(
    (p) => p.ppid === process.pid && (file === undefined || p.args.includes(file)),
  );
  const doomed = children.flatMap((c) => [c, ...descendantsOf(c.pid, table)]);
  for (const p of doomed) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return doomed.map((p) => p.pid);
}
