// A database of its own for each test file: created from nothing, migrated, dropped at the end.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { dropDatabaseSlots } from '../../src/db/capture-slot.js';
import { migrate } from '../../src/db/migrator.js';
import { createPool, type Pool } from '../../src/db/pool.js';

export function adminUrl(): string {
  const url = process.env.EMBEDSYNC_TEST_ADMIN_URL;
  if (!url) throw new Error('EMBEDSYNC_TEST_ADMIN_URL is not set: run the tests with `npm test`');
  return url;
}

export interface TestDatabase {
  name: string;
  url: string;
  pool: Pool;
  drop(): Promise<void>;
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `es_${label.replace(/[^a-z0-9]/g, '_').slice(0, 30)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const pool = createPool(url.toString(), { max: 20, applicationName: `test-${label}` });
  await migrate(pool);
  return {
    name,
    url: url.toString(),
    pool,
    drop: async () => {
      await pool.end();
      const a = new pg.Client({ connectionString: adminUrl() });
      await a.connect();
      try {
        // A logical capture slot left behind keeps the shared server's WAL, and blocks the drop.
        await dropDatabaseSlots(a, name);
        await a.query(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
