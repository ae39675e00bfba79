// The test command itself: a test that runs past its time fails by name and its file is stopped,
// its process gone even when it ignores SIGTERM; the other files still run, and the summary is
// node's own.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startCpuHog } from '../helpers/cpu-hog.js';

const root = path.resolve(import.meta.dirname, '../..');
const fixture = (name: string): string => path.join(root, 'test/fixtures/runner', name);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function outsideTheRunner(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

describe('the test runner', () => {
  it('fails a test that runs past its time, stops its file, fails the run, and leaves no process behind', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'embedsync-runner-'));
    const pidFile = path.join(dir, 'pid');
    let pid: number | undefined;
    try {
      const args = [
        '--import',
        'tsx',
        'test/run.ts',
        fixture('hangs.test.ts'),
        fixture('passes.test.ts'),
      ];
      const child = spawn(process.execPath, args, {
        cwd: root,
        // Without NODE_TEST_CONTEXT, which tells a test file's process that a runner already
        // reports for it.
        env: {
          ...outsideTheRunner(),
          EMBEDSYNC_TEST_FILE_TIMEOUT_MS: '3000',
          EMBEDSYNC_RUNNER_FIXTURE_PID: pidFile,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      const [code] = (await once(child, 'close')) as [number | null];
      clearTimeout(timer);
      pid = Number(readFileSync(pidFile, 'utf8'));

      assert.equal(code, 1, stdout);
      // The time limit is each test's: the test is named, and its file, with its location.
      assert.match(stdout, /^not ok \d+ - never finishes$/m);
      assert.match(stdout, new RegExp(`location: '${fixture('hangs.test.ts')}:`));
      assert.match(stdout, /error: 'test timed out after 3000ms'/);
      assert.match(stderr, /^# stopped test\/fixtures\/runner\/hangs\.test\.ts: "never finishes"/m);
      assert.match(stdout, /^ok \d+ - passes$/m);
      assert.match(stdout, /^# pass 1$/m);
      assert.ok(!alive(pid), `the hanging file's process ${pid} is still running`);
    } finally {
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops the CPU hog’s threads, once, however often it is asked', async () => {
    const hog = startCpuHog(2);
    assert.equal(hog.threads, 2);
    const stopping = hog.stop();
    assert.equal(hog.stop(), stopping);
    await stopping;
  });
});
