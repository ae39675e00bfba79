// PostgreSQL's own pgbench, driven with custom scripts: the honest tool for "how many single-row
// transactions per second", with its own C clients, so the figure is not the load generator's
// limit.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findPostgres } from '../../src/stack/postgres.js';
import { isExecutable, onPath } from '../../src/stack/run.js';
import { onInterrupt } from './interrupt.js';

const exec = promisify(execFile);

export interface PgbenchRun {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
}

/** The pgbench of the newest installed PostgreSQL, else the one on PATH. */
export const findPgbench = (): Promise<string> => findPgTool('pgbench');

/** A client program of the newest installed PostgreSQL, else the one on PATH. */
export async function findPgTool(name: string): Promise<string> {
  const pgi = await findPostgres();
  const candidate = pgi && path.join(pgi.bindir, name);
  const found = candidate && isExecutable(candidate) ? candidate : onPath(name);
  if (!found)
    throw new Error(
      `${name} not found: install the PostgreSQL server package (it ships ${name}) or put ${name} on PATH`,
    );
  return found;
}

export interface PgbenchOptions {
  bin: string;
  databaseUrl: string;
  script: string;
  clients: number;
  durationS: number;
}

export async function runPgbench(o: PgbenchOptions): Promise<PgbenchRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-pgbench-'));
  try {
    const file = path.join(dir, 'script.sql');
    await writeFile(file, o.script);
    const url = new URL(o.databaseUrl);
    const threads = Math.max(1, Math.min(o.clients, os.cpus().length));
    const args = [
      '--no-vacuum',
      // Prepared statements: the parse cost of the INSERT itself is gone, so the trigger's share
      // shows.
      '--protocol=prepared',
      `--client=${o.clients}`,
      `--jobs=${threads}`,
      `--time=${Math.round(o.durationS)}`,
      `--file=${file}`,
      `--host=${url.hostname}`,
      `--port=${url.port || '5432'}`,
      `--username=${decodeURIComponent(url.username) || 'postgres'}`,
      decodeURIComponent(url.pathname.slice(1)),
    ];
    const env = {
      ...process.env,
      ...(url.password ? { PGPASSWORD: decodeURIComponent(url.password) } : {}),
    };
    const running = exec(o.bin, args, { env, timeout: (o.durationS + 120) * 1000 });
    const forget = onInterrupt(() => Promise.resolve(running.child.kill('SIGINT')));
    try {
      return parse((await running).stdout);
    } finally {
      forget();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function parse(out: string): PgbenchRun {
  const number = (re: RegExp): number => {
    const m = re.exec(out);
    if (!m?.[1]) throw new Error(`cannot read pgbench output (${re.source}):\n${out}`);
    return Number(m[1]);
  };
  return {
    tps: number(/^tps = ([\d.]+)/m),
    latencyMs: number(/^latency average = ([\d.]+) ms/m),
    transactions: number(/^number of transactions actually processed: (\d+)/m),
    failed: /^number of failed transactions: (\d+)/m.test(out)
      ? number(/^number of failed transactions: (\d+)/m)
      : 0,
  };
}
