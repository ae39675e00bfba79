// pgai's vectorizer worker, the peer the `peers` benchmark runs beside embedsync: installed from
// PyPI into a virtual environment under EMBEDSYNC_HOME once (reused by later runs), its catalog
// installed in a database, and its worker run as a child process the way its users run it.
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { readEnv } from '../../src/config/env.js';
import { onInterrupt } from './interrupt.js';
import { stopChild, type Service } from './processes.js';

const run = promisify(execFile);

export const PGAI_VERSION = '0.12.1';
/**
 * The worker's `vectorizer-worker` extra, less the document parsers it needs only for files:
 * docling pulls in torch (gigabytes), pymupdf4llm a PDF engine. Rows of text use neither.
 */
const LEFT_OUT = ['docling', 'pymupdf4llm'];
const READY_TIMEOUT_MS = 60_000;

export interface Pgai {
  venv: string;
  /** The `pgai` command of the virtual environment. */
  bin: string;
  /**
   * The environment's Python, which runs `bin`: a virtual environment reached by another path keeps
   * a shebang naming the path it was made at.
   */
  python: string;
  /**
   * The tokenizer's files the package ships: tiktoken reads them from here instead of downloading
   * them, which an offline machine cannot do.
   */
  tiktokenCache: string;
}

/** What stops the benchmark from installing pgai, in words, or the installed worker. */
export type PgaiInstall = { ok: true; pgai: Pgai } | { ok: false; missing: string };

// Prints the extra's requirements with their markers evaluated (pip's own vendored packaging).
const LIST_REQUIREMENTS = `
import sys
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
skip = set(sys.argv[1:])
for line in requires('pgai') or []:
    r = Requirement(line)
    if r.name in skip or r.marker is None or not r.marker.evaluate({'extra': 'vectorizer-worker'}):
        continue
    r.marker = None
    print(r)
`;

const FIND_TIKTOKEN_CACHE = `
import os, pgai
print(os.path.join(os.path.dirname(pgai.__file__), 'vectorizer', 'tiktoken_cache'))
`;

async function missingPython(python: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(python, [
      '-c',
      'import sys, venv, ensurepip; print("%d.%d" % sys.version_info[:2])',
    ]);
    const [major = 0, minor = 0] = stdout.trim().split('.').map(Number);
    if (major < 3 || (major === 3 && minor < 10))
      return `Python ≥ 3.10 (pgai ${PGAI_VERSION} needs it; ${python} is ${stdout.trim()})`;
    return undefined;
  } catch (err) {
    const message = (err as { stderr?: string; code?: string }).stderr ?? '';
    if ((err as { code?: string }).code === 'ENOENT') return `${python} (not found on PATH)`;
    return `Python's venv and ensurepip modules (${python}: ${message.trim().split('\n').pop() ?? 'failed'}; on Debian: apt-get install python3-venv)`;
  }
}

async function pip(venv: string, args: string[], logFile: string): Promise<void> {
  try {
    const { stdout, stderr } = await run(
      path.join(venv, 'bin', 'pip'),
      ['install', '--disable-pip-version-check', ...args],
      { maxBuffer: 64 * 2 ** 20 },
    );
    await writeFile(logFile, stdout + stderr, { flag: 'a' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    await writeFile(logFile, (e.stdout ?? '') + (e.stderr ?? ''), { flag: 'a' });
    throw new Error(
      `pip install ${args.join(' ')} failed (log: ${logFile}):\n${(e.stderr ?? e.message).split('\n').slice(-15).join('\n')}`,
      { cause: err },
    );
  }
}

/**
 * Installs pgai and its worker's dependencies into <EMBEDSYNC_HOME>/pgai-<version> unless a
 * previous run did; resolves to what is missing when Python cannot make a virtual environment.
 */
export async function ensurePgai(log: (line: string) => void): Promise<PgaiInstall> {
  const python = process.env.PYTHON ?? 'python3';
  const venv = path.resolve(readEnv().home, `pgai-${PGAI_VERSION}`);
  const bin = path.join(venv, 'bin', 'pgai');
  const done = path.join(venv, '.installed');
  if (!existsSync(done)) {
    const missing = await missingPython(python);
    if (missing) return { ok: false, missing };
    log(`installing pgai ${PGAI_VERSION} and its worker's dependencies into ${venv} (once)`);
    await rm(venv, { recursive: true, force: true });
    await mkdir(path.dirname(venv), { recursive: true });
    await run(python, ['-m', 'venv', venv]);
    const logFile = path.join(venv, 'install.log');
    await pip(venv, [`pgai==${PGAI_VERSION}`], logFile);
    const { stdout } = await run(path.join(venv, 'bin', 'python'), [
      '-c',
      LIST_REQUIREMENTS,
      ...LEFT_OUT,
    ]);
    const requirements = stdout.split('\n').filter(Boolean);
    // pgai itself named again, so the resolver keeps the version its extra was read from.
    await pip(venv, [`pgai==${PGAI_VERSION}`, ...requirements], logFile);
    await writeFile(done, `${requirements.join('\n')}\n`);
  }
  const { stdout } = await run(path.join(venv, 'bin', 'python'), ['-c', FIND_TIKTOKEN_CACHE]);
  const venvPython = path.join(venv, 'bin', 'python');
  return { ok: true, pgai: { venv, bin, python: venvPython, tiktokenCache: stdout.trim() } };
}

/** `pgai install`: the ai schema, its catalog and the vector extension. */
export async function installPgaiCatalog(pgai: Pgai, databaseUrl: string): Promise<void> {
  await run(pgai.python, [pgai.bin, 'install', '-d', databaseUrl]);
}

/** The pip requirements the installation used, for the results file. */
export async function pgaiRequirements(pgai: Pgai): Promise<string[]> {
  const text = await readFile(path.join(pgai.venv, '.installed'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean);
}

export interface PgaiWorkerOptions {
  concurrency: number;
  pollIntervalS: number;
  /** What the worker sends as the OpenAI key (the mock takes any). */
  apiKey: string;
}

/**
 * `pgai vectorizer worker`, ready once it has logged its first "sleeping … before polling" (it
 * has connected, read the catalog and found no work, or done it).
 */
export function startPgaiWorker(
  pgai: Pgai,
  databaseUrl: string,
  options: PgaiWorkerOptions,
  logFile: string,
): Service {
  const child = spawn(
    pgai.python,
    [
      pgai.bin,
      'vectorizer',
      'worker',
      '-d',
      databaseUrl,
      '-c',
      String(options.concurrency),
      '--poll-interval',
      String(options.pollIntervalS),
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        OPENAI_API_KEY: options.apiKey,
        TIKTOKEN_CACHE_DIR: pgai.tiktokenCache,
        PYTHONUNBUFFERED: '1',
      },
    },
  );
  const out = createWriteStream(logFile);
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) =>
    child.once('close', () => out.end(() => resolve())),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const remember = (chunk: Buffer): void => {
      out.write(chunk);
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        lines.push(line);
        if (lines.length > 40) lines.shift();
        if (line.includes('before polling for new work')) resolve();
      }
    };
    child.stdout?.on('data', remember);
    child.stderr?.on('data', remember);
    child.once('exit', (code, signal) =>
      reject(new Error(`pgai's worker exited (${signal ?? code}):\n${lines.join('\n')}`)),
    );
    setTimeout(
      () =>
        reject(
          new Error(
            `pgai's worker was not polling within ${READY_TIMEOUT_MS / 1000} s:\n${lines.join('\n')}`,
          ),
        ),
      READY_TIMEOUT_MS,
    ).unref();
  });
  ready.catch(() => undefined);
  const forget = onInterrupt(() => stopChild(child, exited, 5_000));
  return {
    name: 'pgai worker',
    pid: child.pid,
    ready,
    tail: () => lines.join('\n'),
    logFile,
    stop: async (graceMs = 10_000) => {
      await stopChild(child, exited, graceMs);
      forget();
    },
  };
}
