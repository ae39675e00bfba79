// The worker's memory defaults (src/worker/memory-defaults.ts): what is missing is added, what an
// operator set is kept, and the worker command restarts itself in place with them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import {
  memoryDefaultsEnv,
  WORKER_MALLOC_ARENAS,
  WORKER_SEMI_SPACE_MIB,
} from '../../src/worker/memory-defaults.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe("the worker's memory defaults", () => {
  it('adds the semi-space and the arenas when neither is set, keeping the rest', () => {
    const env = memoryDefaultsEnv({ PATH: '/bin', NODE_OPTIONS: '--enable-source-maps' }, []);
    assert.deepEqual(env, {
      PATH: '/bin',
      MALLOC_ARENA_MAX: String(WORKER_MALLOC_ARENAS),
      NODE_OPTIONS: `--enable-source-maps --max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`,
    });
  });

  it("keeps an operator's own settings, and asks for no restart once both are there", () => {
    assert.equal(
      memoryDefaultsEnv({ MALLOC_ARENA_MAX: '4', NODE_OPTIONS: '--max-semi-space-size=32' }, []),
      undefined,
    );
    assert.equal(
      memoryDefaultsEnv({ MALLOC_ARENA_MAX: '4' }, ['--max-semi-space-size=32']),
      undefined,
    );
    assert.deepEqual(memoryDefaultsEnv({ MALLOC_ARENA_MAX: '4' }, []), {
      MALLOC_ARENA_MAX: '4',
      NODE_OPTIONS: `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`,
    });
  });

  it(
    'the worker command restarts itself in place with them: same pid, defaults applied',
    { skip: process.platform !== 'linux' && 'process.execve and glibc arenas are Linux matters' },
    () => {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env))
        if (v !== undefined && k !== 'MALLOC_ARENA_MAX' && k !== 'NODE_OPTIONS') env[k] = v;
      const script = `
        const before = process.env.STARTED_AS ?? String(process.pid);
        process.env.STARTED_AS = before;
        await import('./src/cli/worker-memory.ts');
        console.log(JSON.stringify({ before, pid: process.pid, arenas: process.env.MALLOC_ARENA_MAX,
          options: process.env.NODE_OPTIONS }));`;
      const out = execFileSync(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { cwd: ROOT, env, encoding: 'utf8' },
      );
      const seen = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, string>;
      assert.equal(seen.pid, Number(seen.before));
      assert.equal(seen.arenas, String(WORKER_MALLOC_ARENAS));
      assert.equal(seen.options, `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`);
    },
  );
});
