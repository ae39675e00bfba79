// The test command: brings up the stack (installing what is missing), runs the named suites with
// node's test runner against it, and stops what it started.
//   tsx test/run.ts unit integration      (npm test)
//   tsx test/run.ts chaos                 (npm run test:chaos: the kill-and-recover scenarios)
//   tsx test/run.ts --loaded unit integration
//                                         (npm run test:loaded: the same while the CPUs are kept busy)
//   tsx test/run.ts test/integration/search.test.ts …   (single files)
// A test that runs longer than its suite's FILE_TIMEOUT_MIN (or EMBEDSYNC_TEST_FILE_TIMEOUT_MS)
// fails, named, its file is stopped, and the run goes on; should a file outlive that limit by
// WATCHDOG_GRACE_MS, the whole run is stopped with the files still running.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { run } from 'node:test';
import { spec, tap } from 'node:test/reporters';
import { readEnv } from '../src/config/env.js';
import { ensureStack, type LocalStack } from '../src/stack/index.js';
import { belowNodeFloor, NODE_FLOOR } from '../bin/node-floor.js';
import { startCpuHog, type CpuHog } from './helpers/cpu-hog.js';
import { killChildren } from './helpers/descendants.js';

// `npm test` runs this on the project's own Node 24 (package.json's optionalDependencies); run by
// hand with an older system node, it says so before starting anything.
if (belowNodeFloor()) {
  console.error(
    `the tests need Node.js ${NODE_FLOOR} or later; this is ${process.versions.node} (${process.execPath}). ` +
      'Run them with `npm test` after `npm ci`, which brings the project its Node 24.',
  );
  process.exit(1);
}

const SUITES = ['unit', 'integration', 'chaos'];
// Integration files each use a database and task queue of their own, so they can run side by side;
// chaos files kill servers and run alone.
const CONCURRENCY: Record<string, number> = { unit: 2, integration: 2, chaos: 1 };
// Chaos files wait up to 4.5 min for recovery after each kill.
const FILE_TIMEOUT_MIN: Record<string, number> = { unit: 10, integration: 10, chaos: 20 };
const WATCHDOG_GRACE_MS = 60_000;

const args = process.argv.slice(2);
const loaded = args.includes('--loaded');
const names = args.filter((a) => a !== '--loaded');
const isFile = (a: string): boolean => a.endsWith('.test.ts') && existsSync(a);
const unknown = names.filter((a) => !SUITES.includes(a) && !isFile(a));
if (names.length === 0 || unknown.length > 0) {
  console.error(`usage: tsx test/run.ts [--loaded] <${SUITES.join('|')}|<file>.test.ts>…`);
  process.exit(2);
}
const suiteFiles = (suite: string): string[] =>
  readdirSync(path.join('test', suite))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.resolve('test', suite, f));
const files = names.flatMap((n) => (isFile(n) ? [path.resolve(n)] : suiteFiles(n)));
const suiteOf = (file: string): string => path.basename(path.dirname(file));
const concurrency = Math.min(...files.map((f) => CONCURRENCY[suiteOf(f)] ?? 1));
const FILE_TIMEOUT_MS = Number(
  process.env.EMBEDSYNC_TEST_FILE_TIMEOUT_MS ??
    Math.max(...files.map((f) => FILE_TIMEOUT_MIN[suiteOf(f)] ?? 10)) * 60_000,
);

let stack: LocalStack | undefined;
let hog: CpuHog | undefined;
let stopping: Promise<void> | undefined;
const stopAll = (): Promise<void> =>
  (stopping ??= (async () => {
    await hog?.stop();
    await stack?.stop();
  })());
const bail = (code: number, why: string): void => {
  console.error(`\n# ${why}`);
  killChildren();
  void stopAll().finally(() => process.exit(code));
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => bail(signal === 'SIGINT' ? 130 : 143, `${signal}: stopping the run`));
}
process.once('uncaughtException', (err) =>
  bail(1, `the test runner failed: ${err.stack ?? err.message}`),
);

let code: number;
try {
  stack = await ensureStack(readEnv(), {
    install: true,
    log: (line) => console.log(`# [stack] ${line}`),
  });
  // The test files inherit this environment (and this process's --import tsx).
  Object.assign(process.env, {
    EMBEDSYNC_TEST_ADMIN_URL: stack.adminDatabaseUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_NAMESPACE: stack.temporalNamespace,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    LOG_FORMAT: 'json',
    ...(loaded ? { EMBEDSYNC_TEST_PATIENCE: process.env.EMBEDSYNC_TEST_PATIENCE ?? '3' } : {}),
  });
  if (loaded) {
    hog = startCpuHog();
    console.log(`# under load: ${hog.threads} threads spinning`);
  }
  code = await runFiles(files, concurrency);
} finally {
  await stopAll();
}
process.exit(code);

interface FileEvent {
  name?: string;
  file?: string;
  details?: { error?: { failureType?: string } };
}

/**
 * Runs the files through node's test runner, each in a process of its own; resolves to the exit
 * code.
 */
async function runFiles(paths: string[], concurrency: number): Promise<number> {
  const running = new Map<string, number>();
  let failed = false;
  const stream = run({ files: paths, concurrency, timeout: FILE_TIMEOUT_MS });
  // A file's own test is named by its path: dequeued when its process starts, complete when it
  // ends.
  const ofFile = (d: FileEvent): string | undefined =>
    d.file && d.name === d.file ? d.file : undefined;
  stream.on('test:dequeue', (d: FileEvent) => {
    const file = ofFile(d);
    if (file) running.set(file, Date.now());
  });
  stream.on('test:complete', (d: FileEvent) => {
    const file = ofFile(d);
    if (file) running.delete(file);
  });
  stream.on('test:fail', (d: FileEvent) => {
    failed = true;
    // The time limit is each test's (node gives it to the file's process as --test-timeout). A test
    // that ran out of time may have left what it awaited running (a worker's shutdown waiting on a
    // hung test), which would keep its file's process alive: the file is stopped there, with what it
    // spawned, and fails by name.
    if (d.file && d.details?.error?.failureType === 'testTimeoutFailure') {
      killChildren(d.file);
      const limit = `${FILE_TIMEOUT_MS / 1000} s`;
      console.error(
        `# stopped ${path.relative(process.cwd(), d.file)}: "${d.name}" ran past ${limit}`,
      );
    }
  });
  const watchdog = setInterval(() => {
    const limit = Date.now() - FILE_TIMEOUT_MS - WATCHDOG_GRACE_MS;
    const stuck = [...running]
      .filter(([, since]) => since < limit)
      .map(([f]) => path.relative(process.cwd(), f));
    if (stuck.length === 0) return;
    const all = [...running.keys()].map((f) => path.relative(process.cwd(), f)).join(', ');
    bail(
      1,
      `stopped: ${stuck.join(', ')} ran past ${FILE_TIMEOUT_MS / 1000} s and could not be stopped; ` +
        `running: ${all}`,
    );
  }, 5000);
  watchdog.unref();
  const reporter = process.stdout.isTTY ? new spec() : tap;
  try {
    await new Promise<void>((resolve, reject) => {
      const out = stream.compose(reporter) as Readable;
      out.on('error', reject);
      out.on('end', resolve);
      out.pipe(process.stdout, { end: false });
    });
  } finally {
    clearInterval(watchdog);
  }
  return failed ? 1 : 0;
}
