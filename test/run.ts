// The test command: brings up the stack (installing what is missing), runs the named suites with
// node's test runner against it, and stops what it started.
//   tsx test/run.ts unit integration      (npm test)
//   tsx test/run.ts chaos                 (npm run test:chaos: the kill-and-recover scenarios)
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { readEnv } from '../src/config/env.js';
import { ensureStack } from '../src/stack/index.js';

const SUITES = ['unit', 'integration', 'chaos'];
// Integration files each use a database and task queue of their own, so they can run side by side;
// chaos files kill servers and run alone.
const CONCURRENCY: Record<string, number> = { unit: 2, integration: 2, chaos: 1 };

const suites = process.argv.slice(2);
const unknown = suites.filter((s) => !SUITES.includes(s));
if (suites.length === 0 || unknown.length > 0) {
  console.error(`usage: tsx test/run.ts <${SUITES.join('|')}>…`);
  process.exit(2);
}

const stack = await ensureStack(readEnv(), { install: true, log: (line) => console.log(`[stack] ${line}`) });
let code: number;
try {
  const files = suites.flatMap((s) =>
    readdirSync(path.join('test', s)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join('test', s, f)),
  );
  const concurrency = Math.min(...suites.map((s) => CONCURRENCY[s] ?? 1));
  code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files], {
      stdio: 'inherit',
      env: {
        ...process.env,
        EMBEDSYNC_TEST_ADMIN_URL: stack.adminDatabaseUrl,
        TEMPORAL_ADDRESS: stack.temporalAddress,
        TEMPORAL_NAMESPACE: stack.temporalNamespace,
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
        LOG_FORMAT: 'json',
      },
    });
    child.on('exit', (status, signal) => resolve(status ?? (signal ? 1 : 0)));
  });
} finally {
  await stack.stop();
}
process.exit(code);
