// The replication slot and publication of logical capture (docs/architecture.md, decision 29): every
// query of them. One slot per database (slot names are cluster-wide, so it is named by the
// database's oid), read through pgoutput and filtered by one publication that holds the tables of the
// pipelines that capture logically.
import { qualified, quoteIdent } from './ident.js';
import { CATALOG_LOCK } from './pipeline-state.js';
import type { Pool, PoolClient, Queryable } from './pool.js';

export const CAPTURE_PUBLICATION = 'embedsync_capture';

const SQL_CAPTURE_PIPELINES = `config -> 'source' ->> 'capture' = 'logical'`;

/** The slot of the current database: `embedsync_<database oid>`. */
export async function captureSlotName(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ name: string }>(
    `select 'embedsync_' || oid::text as name from pg_database where datname = current_database()`,
  );
  return rows[0]?.name ?? 'embedsync';
}

export async function walLevel(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ wal_level: string }>('show wal_level');
  return rows[0]?.wal_level ?? '';
}

const isDuplicate = (err: unknown): boolean => (err as { code?: string }).code === '42710';

/**
 * Creates the publication, then the slot, where missing. Outside any transaction: a slot cannot be
 * created in one that has written. The publication comes first so every change the slot decodes is
 * read under a catalog that has it (pgoutput fails on a publication it cannot see).
 */
export async function ensureCaptureSlot(pool: Pool): Promise<void> {
  const exists = await pool.query('select 1 from pg_publication where pubname = $1', [
    CAPTURE_PUBLICATION,
  ]);
  if (exists.rowCount === 0) {
    await pool
      .query(
        `create publication ${quoteIdent(CAPTURE_PUBLICATION)} with (publish = 'insert, update, delete, truncate')`,
      )
      .catch((err: unknown) => {
        if (!isDuplicate(err)) throw err;
      });
  }
  const slot = await captureSlotName(pool);
  if (await captureSlotExists(pool, slot)) return;
  await pool
    .query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
    .catch((err: unknown) => {
      if (!isDuplicate(err)) throw err;
    });
}

export async function captureSlotExists(db: Queryable, slot?: string): Promise<boolean> {
  const { rowCount } = await db.query('select 1 from pg_replication_slots where slot_name = $1', [
    slot ?? (await captureSlotName(db)),
  ]);
  return (rowCount ?? 0) > 0;
}

/**
 * Makes the publication hold exactly the source tables of the pipelines that capture logically;
 * in the caller's transaction (an apply's, a remove's), so a table changes from trigger to logical
 * capture in one commit. A table without a replica identity stays out: in the publication, every
 * UPDATE and DELETE of it would fail (sql/000022); the schema check holds its pipelines meanwhile.
 */
export async function syncCapturePublication(client: PoolClient): Promise<void> {
  const { rows } = await client.query<{ schema: string; table: string; wanted: boolean }>(
    `with wanted as (
       select distinct source_relid as relid from embedsync.pipelines
        where ${SQL_CAPTURE_PIPELINES} and source_relid is not null
          and embedsync.replica_identity_gap(source_relid) is null),
     held as (
       select r.prrelid as relid from pg_publication_rel r
         join pg_publication p on p.oid = r.prpubid where p.pubname = $1)
     select n.nspname as schema, c.relname as table, w.relid is not null as wanted
       from (select relid from wanted union select relid from held) x
       left join wanted w on w.relid = x.relid
       left join held h on h.relid = x.relid
       join pg_class c on c.oid = x.relid
       join pg_namespace n on n.oid = c.relnamespace
      where (w.relid is null) <> (h.relid is null)`,
    [CAPTURE_PUBLICATION],
  );
  if (rows.length === 0) return;
  const publication = await client.query('select 1 from pg_publication where pubname = $1', [
    CAPTURE_PUBLICATION,
  ]);
  if (publication.rowCount === 0) return;
  // The whole table, not a column list: a column in a publication's column list cannot be dropped
  // (without CASCADE, which drops the table from it), and a user's DDL must never fail for us.
  for (const r of rows)
    await client.query(
      `alter publication ${quoteIdent(CAPTURE_PUBLICATION)} ${r.wanted ? 'add' : 'drop'} table only ${qualified(r.schema, r.table)}`,
    );
}

/** Why the table's UPDATEs and DELETEs could not be published (sql/000022), or undefined. */
export async function replicaIdentityGap(
  db: Queryable,
  relid: number,
): Promise<string | undefined> {
  const { rows } = await db.query<{ gap: string | null }>(
    'select embedsync.replica_identity_gap($1) as gap',
    [relid],
  );
  return rows[0]?.gap ?? undefined;
}

/**
 * Tables whose pipelines disagree on how they are captured: a table is in the publication or not,
 * so its pipelines capture one way.
 */
export async function mixedCaptureTables(
  db: Queryable,
): Promise<{ table: string; pipelines: string[] }[]> {
  const { rows } = await db.query<{ table: string; pipelines: string[] }>(
    `select min(source_schema || '.' || source_table) as table, array_agg(name order by name) as pipelines
       from embedsync.pipelines where source_relid is not null
      group by source_relid
     having count(distinct coalesce(config -> 'source' ->> 'capture', 'trigger')) > 1`,
  );
  return rows;
}

/** Whether any pipeline of this database captures logically. */
export async function anyLogicalCapture(db: Queryable): Promise<boolean> {
  const { rowCount } = await db.query(
    `select 1 from embedsync.pipelines where ${SQL_CAPTURE_PIPELINES} limit 1`,
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Drops the slot when no pipeline captures logically any more: a forgotten slot keeps every WAL
 * segment since its position, until the disk is full. Under the catalog lock, so an apply cannot
 * add a logical pipeline meanwhile; a reader still streaming from it is ended first (with no logical
 * pipeline left, no poller opens it again). The drop itself is not transactional.
 */
export async function dropCaptureSlotIfUnused(pool: Pool): Promise<boolean> {
  const client = await pool.connect();
  try {
    // A session lock, not a transaction's: a drop that meets the slot still active is retried.
    await client.query('select pg_advisory_lock($1)', [CATALOG_LOCK]);
    try {
      if (await anyLogicalCapture(client)) return false;
      return await dropSlot(client, await captureSlotName(client));
    } finally {
      await client.query('select pg_advisory_unlock($1)', [CATALOG_LOCK]);
    }
  } finally {
    client.release();
  }
}

/**
 * Waits, at most `timeoutMs`, for the slot's reader to confirm everything written so far: after the
 * last logical pipeline went back to triggers, what the slot still held is queued before it goes.
 */
export async function awaitCaptureSlotRead(db: Queryable, timeoutMs: number): Promise<boolean> {
  const slot = await captureSlotName(db);
  const { rows } = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows: state } = await db.query<{ read: boolean }>(
      `select confirmed_flush_lsn >= $2::pg_lsn as read from pg_replication_slots
        where slot_name = $1`,
      [slot, rows[0]?.lsn],
    );
    const s = state[0];
    if (!s || s.read) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Ends the session streaming from the slot, if any, then drops it; false when there is none. */
async function dropSlot(db: Queryable, slot: string): Promise<boolean> {
  for (let attempt = 1; ; attempt += 1) {
    await db.query(
      `select pg_terminate_backend(active_pid) from pg_replication_slots
        where slot_name = $1 and active_pid is not null`,
      [slot],
    );
    try {
      const { rowCount } = await db.query(
        'select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1',
        [slot],
      );
      return (rowCount ?? 0) > 0;
    } catch (err) {
      // Still active: the ended session has not let go yet.
      if ((err as { code?: string }).code !== '55006' || attempt >= 250) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * The replication command that streams the slot's changes from its confirmed position, decoded by
 * pgoutput for the publication's tables only.
 */
export const captureStreamCommand = (slot: string): string =>
  `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL 0/0 (proto_version '1', publication_names '${quoteIdent(CAPTURE_PUBLICATION)}')`;

export interface CaptureSlotState {
  slot: string;
  /** WAL bytes written since the slot's confirmed position: what it keeps on disk, about. */
  lagBytes: number;
  /** reserved, extended, unreserved or lost (pg_replication_slots.wal_status). */
  walStatus: string | null;
}

/** The slot's state, or undefined when it does not exist. */
export async function captureSlotState(db: Queryable): Promise<CaptureSlotState | undefined> {
  const { rows } = await db.query<{ slot: string; lag: string | null; wal_status: string | null }>(
    `select slot_name as slot, wal_status,
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text as lag
       from pg_replication_slots where slot_name = $1`,
    [await captureSlotName(db)],
  );
  const r = rows[0];
  return r && { slot: r.slot, lagBytes: Number(r.lag ?? 0), walStatus: r.wal_status };
}

/** Drops every slot of the named database (a test database's, before it is dropped). */
export async function dropDatabaseSlots(db: Queryable, database: string): Promise<void> {
  const { rows } = await db.query<{ slot_name: string }>(
    'select slot_name from pg_replication_slots where database = $1',
    [database],
  );
  for (const r of rows) await dropSlot(db, r.slot_name);
}
