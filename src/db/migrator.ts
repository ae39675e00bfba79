// Forward-only migrations: sql/NNNNNN_name.sql, one transaction each, recorded in
// embedsync.migrations.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Pool } from './pool.js';

const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
// Any fixed number works: it only has to be the same for every migrator of this project.
const MIGRATION_LOCK = 7_146_221_031;

export interface Migration {
  id: number;
  name: string;
  file: string;
}

export async function listMigrations(dir = SQL_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{6}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((file) => ({
    id: Number(file.slice(0, 6)),
    name: file.slice(7, -4),
    file: path.join(dir, file),
  }));
}

/**
 * Applies every migration not yet applied; returns the names it applied. Safe to run concurrently.
 */
export async function migrate(pool: Pool): Promise<string[]> {
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`
      create schema if not exists embedsync;
      create table if not exists embedsync.migrations (
        id integer primary key, name text not null, applied_at timestamptz not null default now())`);
    const done = new Set(
      (await client.query<{ id: number }>('select id from embedsync.migrations')).rows.map(
        (r) => r.id,
      ),
    );
    for (const m of await listMigrations()) {
      if (done.has(m.id)) continue;
      const sql = await readFile(m.file, 'utf8');
      try {
        await client.query('begin');
        // The row goes in first so that a concurrent migrator without the lock fails fast on the
        // key.
        await client.query('insert into embedsync.migrations (id, name) values ($1, $2)', [
          m.id,
          m.name,
        ]);
        await client.query(sql);
        await client.query('commit');
        applied.push(m.name);
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw new Error(`migration ${path.basename(m.file)} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
  return applied;
}
