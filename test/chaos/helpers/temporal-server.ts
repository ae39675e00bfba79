// A Temporal dev server of the scenario's own, so that killing it disturbs nobody else: free port,
// its own SQLite file (kept across a kill, as a real server keeps its database), no Web UI.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readEnv } from '../../../src/config/env.js';
import { stackPaths } from '../../../src/stack/paths.js';
import { findTemporalCli, waitForTemporal } from '../../../src/stack/temporal.js';
import { searchAttributeFlags } from '../../../src/temporal/search-attributes.js';
import { freePort, removeOnExit, type Child } from './processes.js';
import type { Scene } from './scene.js';

export interface TemporalServer {
  address: string;
  namespace: string;
  /** SIGKILL: no shutdown of any kind. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and the same database file. */
  start(): Promise<void>;
}

export async function startTemporalServer(scene: Scene): Promise<TemporalServer> {
  const env = readEnv();
  const cli = await findTemporalCli(stackPaths(env.home));
  if (!cli) throw new Error('the temporal CLI is not installed: run `npx embedsync stack install`');
  const dir = mkdtempSync(join(tmpdir(), 'embedsync-chaos-temporal-'));
  removeOnExit(dir);
  scene.onCleanup(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const namespace = env.temporalNamespace;
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--headless',
    '--db-filename',
    join(dir, 'temporal.db'),
    ...searchAttributeFlags(),
    ...(namespace === 'default' ? [] : ['--namespace', namespace]),
    '--log-level',
    'warn',
  ];
  let server: Child | undefined;
  let starts = 0;
  const start = async (): Promise<void> => {
    starts += 1;
    const child = scene.spawn(starts === 1 ? 'temporal' : `temporal-${starts}`, cli, args);
    server = child;
    await waitForTemporal(address, namespace, {
      timeoutMs: 60_000,
      failed: () => (child.running ? undefined : 'the server exited'),
    });
  };
  await start();
  return {
    address,
    namespace,
    kill: async () => {
      await server?.kill('SIGKILL');
    },
    start,
  };
}
