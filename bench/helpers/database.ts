// A database of its own for each benchmark: created empty, migrated, given the demo products table
// and (when asked) the demo pipeline, and dropped at the end, so no run sees another's tables or
// outbox.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { applyPipelines } from '../../src/capture/apply.js';
import { loadPipelineFile } from '../../src/config/load.js';
import { migrate } from '../../src/db/migrator.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { PRODUCTS_DDL } from '../../src/demo/products.js';

/** The pipeline users meet first (`npm run dev`): offline provider, 256 dimensions. */
export const PRODUCTS_PIPELINE_FILE = fileURLToPath(
  new URL('../../examples/products.yaml', import.meta.url),
);

export interface BenchDatabase {
  name: string;
  url: string;
  pool: Pool;
  drop(): Promise<void>;
}

const withDatabase = (url: string, database: string): string => {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
};

async function onAdmin(adminUrl: string, sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

export async function createBenchDatabase(adminUrl: string, label: string): Promise<BenchDatabase> {
  // Names are generated here from [a-z0-9_] only, so they need no quoting.
  const name = `bench_${label.replace(/[^a-z0-9]/g, '_').slice(0, 30)}_${randomBytes(3).toString('hex')}`;
  await onAdmin(adminUrl, `create database ${name}`);
  const url = withDatabase(adminUrl, name);
  const pool = createPool(url, { max: 10, applicationName: `bench-${label}` });
  let dropped = false;
  const drop = async (): Promise<void> => {
    if (dropped) return;
    dropped = true;
    await pool.end();
    await onAdmin(adminUrl, `drop database if exists ${name} with (force)`);
  };
  try {
    await migrate(pool);
    await pool.query(PRODUCTS_DDL);
  } catch (err) {
    await drop();
    throw err;
  }
  return { name, url, pool, drop };
}

/** Applies examples/products.yaml: catalog row, vector table, capture triggers. */
export async function applyProductsPipeline(pool: Pool): Promise<void> {
  await applyPipelines(pool, await loadPipelineFile(PRODUCTS_PIPELINE_FILE));
}
