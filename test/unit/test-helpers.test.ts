// The helpers that keep the suite from hanging: teardown that stops everything whatever fails, and
// the process tree the runner walks to stop a test file with what it spawned.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { descendantsOf } from '../helpers/descendants.js';
import { Teardown } from '../helpers/teardown.js';

describe('test teardown', () => {
  it('runs every step, last registered first, even past a failing one, then throws the first failure', async () => {
    const ran: string[] = [];
    const t = new Teardown();
    t.add(() => ran.push('database'));
    t.add(() => {
      ran.push('worker');
      throw new Error('worker would not stop');
    });
    t.add(async () => {
      await Promise.resolve();
      ran.push('poller');
    });
    await assert.rejects(t.run(), { message: 'worker would not stop' });
    assert.deepEqual(ran, ['poller', 'worker', 'database']);
    await t.run(); // each step runs once
    assert.deepEqual(ran, ['poller', 'worker', 'database']);
  });

  it('stops what a setup had started when the setup fails half-way, and passes its error on', async () => {
    const ran: string[] = [];
    const t = new Teardown();
    await assert.rejects(
      t.guard(async () => {
        t.add(() => ran.push('database dropped'));
        await Promise.resolve();
        throw new Error('Temporal unreachable');
      }),
      { message: 'Temporal unreachable' },
    );
    assert.deepEqual(ran, ['database dropped']);
  });
});

describe('process tree', () => {
  it('finds every process below a root, and none beside it', () => {
    const table = [
      { pid: 10, ppid: 1, args: 'node test/run.ts' },
      { pid: 11, ppid: 10, args: 'node --import tsx test/integration/cli.test.ts' },
      { pid: 12, ppid: 11, args: 'node bin/embedsync.js backfill' },
      { pid: 13, ppid: 12, args: 'esbuild --service' },
      { pid: 14, ppid: 10, args: 'node --import tsx test/integration/sync.test.ts' },
      { pid: 20, ppid: 1, args: 'postgres' },
    ];
    assert.deepEqual(
      descendantsOf(11, table).map((p) => p.pid),
      [12, 13],
    );
    assert.deepEqual(
      descendantsOf(10, table).map((p) => p.pid),
      [11, 14, 12, 13],
    );
    assert.deepEqual(descendantsOf(20, table), []);
  });
});
