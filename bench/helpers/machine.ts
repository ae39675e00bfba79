// The facts a figure means nothing without: what it ran on, and which versions.
import os from 'node:os';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool.js';

export interface MachineFacts {
  date: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  loadAverage1m: number;
  os: string;
  node: string;
  postgres: string;
  pgvector: string;
  /** Settings that move write throughput and latency the most. */
  postgresSettings: Record<string, string>;
  temporalServer: string;
}

const SETTINGS = [
  'fsync',
  'synchronous_commit',
  'shared_buffers',
  'wal_level',
  'max_wal_size',
  'checkpoint_timeout',
];

export async function machineFacts(pool: Pool, temporal: Client): Promise<MachineFacts> {
  const version = await pool.query<{ v: string }>(`select current_setting('server_version') as v`);
  const vector = await pool.query<{ v: string }>(
    `select extversion as v from pg_extension where extname = 'vector'`,
  );
  const settings = await pool.query<{ name: string; setting: string }>(
    `select name, current_setting(name) as setting from pg_settings
      where name = any($1::text[]) order by name`,
    [SETTINGS],
  );
  const info = await temporal.workflowService.getSystemInfo({}).catch(() => undefined);
  return {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres: version.rows[0]?.v ?? 'unknown',
    pgvector: vector.rows[0]?.v ?? 'not installed',
    postgresSettings: Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])),
    temporalServer: info?.serverVersion || 'unknown',
  };
}
