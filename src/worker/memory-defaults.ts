// The worker process's memory defaults (docs/architecture.md, decision 31). A walk allocates fast
// (rows, texts, vectors, the provider's answers) and Node sized the young generation of its heap to
// that rate: up to 64 MiB a semi-space on a large machine, two of them resident, for data that lives
// about a second. Capped at 8 MiB, the worker's memory after a long backfill stays near what it was
// after a short one, for a little more garbage collection. glibc gives each thread that allocates an
// arena of its own (the Temporal core's, libuv's and V8's threads), which hold freed memory apart;
// two arenas are enough for a process whose JavaScript runs on one thread. Both must be in place
// before the process starts, so the worker command restarts itself with them (src/cli/worker.ts).
// Pure: what to restart with is decided here, from the environment and arguments it is given.

/** V8's young-generation semi-space for the worker, in MiB (Node's own default: up to 64). */
export const WORKER_SEMI_SPACE_MIB = 8;
/** glibc malloc arenas for the worker (glibc's own default: 8 per core). */
export const WORKER_MALLOC_ARENAS = 2;

const SEMI_SPACE_FLAG = '--max-semi-space-size';

/**
 * The environment to restart the worker with so that its memory defaults apply, or undefined when
 * nothing is missing: an operator's own MALLOC_ARENA_MAX or --max-semi-space-size (on the command
 * line or in NODE_OPTIONS) is kept as it is, and a restarted worker finds both set.
 */
export function memoryDefaultsEnv(
  env: Readonly<Record<string, string | undefined>>,
  execArgv: readonly string[],
): Record<string, string> | undefined {
  const nodeOptions = env.NODE_OPTIONS ?? '';
  const hasSemiSpace =
    execArgv.some((a) => a.startsWith(SEMI_SPACE_FLAG)) || nodeOptions.includes(SEMI_SPACE_FLAG);
  const hasArenas = env.MALLOC_ARENA_MAX !== undefined;
  if (hasSemiSpace && hasArenas) return undefined;
  const next: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) next[k] = v;
  if (!hasArenas) next.MALLOC_ARENA_MAX = String(WORKER_MALLOC_ARENAS);
  if (!hasSemiSpace)
    next.NODE_OPTIONS = `${nodeOptions} ${SEMI_SPACE_FLAG}=${WORKER_SEMI_SPACE_MIB}`.trim();
  return next;
}
