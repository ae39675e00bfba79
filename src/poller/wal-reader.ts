// Logical capture's reader (docs/architecture.md, decision 29): WAL → outbox, run by the poller
// before each claim while some pipeline captures logically. It holds one replication connection
// streaming the slot's changes (the walsender decodes each WAL record once; the SQL functions would
// decode everything since the slot's restart point on every call), queues the keys of the whole
// transactions received and commits, then confirms their end to the server: a crash between the
// two has them sent again (the same keys twice, harmless), never skips one. The slot takes one
// connection at a time, so a second poller's reader waits its turn.
import pg from 'pg';
import { listCapturePipelines } from '../db/catalog.js';
import { captureSlotExists, captureSlotName, captureStreamCommand } from '../db/capture-slot.js';
import { enqueueKeyRuns } from '../db/outbox.js';
import type { Pool, PoolClient } from '../db/pool.js';
import type { Logger } from '../log.js';
import { decodeMessage, type PgOutputMessage, type RelationColumn } from '../capture/pgoutput.js';
import { decodeChanges, type KeyRun } from '../capture/wal-changes.js';

export interface WalReaderOptions {
  /** Between the outbox's commit and the confirmation: tests inject a crash here. */
  afterCommit?: () => Promise<void>;
}

export interface WalReaderDeps {
  pool: Pool;
  /** For the replication connection, which the pool cannot give. */
  databaseUrl: string;
  log: Logger;
}

/** The capture slot is gone: changes since it was lost were not captured. */
export class CaptureSlotMissingError extends Error {
  constructor(readonly slot: string) {
    super(
      `the replication slot ${slot} of logical capture does not exist (dropped, or invalidated past max_slot_wal_keep_size): ` +
        'changes since then were not captured; run `npx embedsync apply` (it creates the slot again) and then a backfill of each logical pipeline',
    );
    this.name = 'CaptureSlotMissingError';
  }
}

export interface WalReadResult {
  /** Whether this reader holds the slot: false when another reads it, or none captures logically. */
  read: boolean;
  transactions: number;
  keys: number;
}

const NOTHING: WalReadResult = { read: false, transactions: 0, keys: 0 };
// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MS = 946_684_800_000;

/** One streaming session: what it has received and not yet queued. */
interface Session {
  client: pg.Client;
  slot: string;
  /** Messages received, in order; the first `whole` of them are of whole transactions. */
  messages: PgOutputMessage[];
  whole: number;
  /** The newest relation message of each table seen in the session (sent once per session). */
  relations: Map<number, readonly RelationColumn[]>;
  /** A keepalive's WAL end: everything before it has been sent. */
  sentUpTo: bigint;
  confirmed: bigint;
  failed?: Error;
}

export class WalReader {
  private session: Session | undefined;
  private foundNoneAt = 0;
  constructor(
    private readonly deps: WalReaderDeps,
    private readonly options: WalReaderOptions = {},
  ) {}

  /**
   * Queues what the stream has brought since the last read, and confirms it: nothing to do when no
   * pipeline captures logically or another session reads the slot.
   */
  async readOnce(): Promise<WalReadResult> {
    // Without a slot to read (or with another poller reading it) this asks once a second, not at
    // every look: trigger capture pays next to nothing for the reader (a new logical pipeline's
    // slot keeps its changes meanwhile).
    if (!this.session && Date.now() - this.foundNoneAt < 1000) return NOTHING;
    const pipelines = await listCapturePipelines(this.deps.pool);
    // While the slot exists it is read, even with every pipeline back on triggers: what it still
    // holds of them is queued before apply drops it.
    if (
      !pipelines.some((p) => p.logical) &&
      (this.session?.failed || !(this.session || (await captureSlotExists(this.deps.pool))))
    ) {
      this.foundNoneAt = Date.now();
      await this.close();
      return NOTHING;
    }
    this.foundNoneAt = 0;
    const session = this.session ?? (await this.open());
    if (!session) {
      // Another poller holds the slot: ask again in a second, not at every look.
      this.foundNoneAt = Date.now();
      return NOTHING;
    }
    try {
      if (session.failed) throw session.failed;
      return await this.queue(session, pipelines);
    } catch (err) {
      // What was received is lost with the session; the server sends it again to the next one.
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    await session?.client.end().catch(() => undefined);
  }

  private async queue(
    s: Session,
    pipelines: Awaited<ReturnType<typeof listCapturePipelines>>,
  ): Promise<WalReadResult> {
    const taken = s.messages.splice(0, s.whole);
    s.whole = 0;
    const decoded = decodeChanges(taken, pipelines, s.relations);
    for (const u of decoded.unreadable)
      this.deps.log.warn(
        { pipeline: u.pipeline, changes: u.count },
        'skipped changes whose key columns are not in the table any more; the schema check holds the pipeline until apply and backfill',
      );
    if (decoded.endLsn !== undefined) {
      if (decoded.runs.length > 0) {
        const client = await this.deps.pool.connect();
        try {
          await client.query('begin');
          for (const p of pipelines) {
            const runs = decoded.runs.filter((r) => r.pipeline === p.name);
            if (runs.length > 0) await this.enqueue(client, p, runs);
          }
          await client.query('commit');
        } catch (err) {
          await client.query('rollback').catch(() => undefined);
          throw err;
        } finally {
          client.release();
        }
      }
      await this.options.afterCommit?.();
      this.confirm(s, decoded.endLsn);
    }
    // Caught up, with nothing of a transaction half received: all the server sent is read.
    if (s.messages.length === 0 && s.sentUpTo > s.confirmed) this.confirm(s, s.sentUpTo);
    const keys = decoded.runs.reduce((n, r) => n + Math.max(r.keys.length, 1), 0);
    return { read: true, transactions: decoded.transactions, keys };
  }

  /**
   * A pipeline's runs in one statement; when a key no longer parses as its column's type (retyped
   * under the pipeline), run by run, skipping the runs that do not: the schema check holds the
   * pipeline meanwhile.
   */
  private async enqueue(
    client: PoolClient,
    p: Awaited<ReturnType<typeof listCapturePipelines>>[number],
    runs: KeyRun[],
  ): Promise<void> {
    const attempt = async (some: KeyRun[]): Promise<boolean> => {
      await client.query('savepoint wal_runs');
      try {
        await enqueueKeyRuns(client, p, some);
        await client.query('release savepoint wal_runs');
        return true;
      } catch (err) {
        await client.query('rollback to savepoint wal_runs');
        if (!(err as { code?: string }).code?.startsWith('22')) throw err;
        return false;
      }
    };
    if (await attempt(runs)) return;
    for (const run of runs)
      if (!(await attempt([run])))
        this.deps.log.warn(
          { pipeline: p.name, op: run.op, keys: run.keys.length },
          'skipped changes whose keys do not parse as the key columns’ types; the schema check holds the pipeline until apply and backfill',
        );
  }

  /** The standby status update: everything before `lsn` is queued and may be forgotten. */
  private confirm(s: Session, lsn: bigint): void {
    if (lsn > s.confirmed) s.confirmed = lsn;
    this.sendStatus(s);
  }

  private sendStatus(s: Session): void {
    const b = Buffer.alloc(34);
    b.write('r', 0);
    b.writeBigUInt64BE(s.confirmed, 1);
    b.writeBigUInt64BE(s.confirmed, 9);
    b.writeBigUInt64BE(s.confirmed, 17);
    b.writeBigUInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
    b.writeUInt8(0, 33);
    (s.client as unknown as StreamingClient).connection.sendCopyFromChunk(b);
  }

  /** Starts streaming from the slot's confirmed position; undefined when another session has it. */
  private async open(): Promise<Session | undefined> {
    const slot = await captureSlotName(this.deps.pool);
    const client = new pg.Client({
      connectionString: this.deps.databaseUrl,
      replication: 'database',
      application_name: 'embedsync-capture',
    } as pg.ClientConfig);
    const session: Session = {
      client,
      slot,
      messages: [],
      whole: 0,
      relations: new Map(),
      sentUpTo: 0n,
      confirmed: 0n,
    };
    client.on('error', (err) => (session.failed ??= err));
    client.on('end', () => (session.failed ??= new Error('the replication connection closed')));
    try {
      await client.connect();
      const connection = (client as unknown as StreamingClient).connection;
      connection.on('copyData', (msg: { chunk: Buffer }) => this.receive(session, msg.chunk));
      await new Promise<void>((resolve, reject) => {
        connection.once('replicationStart', () => resolve());
        client.query(captureStreamCommand(slot)).then(
          // The stream ended from the server's side (a clean end is a failure too: data stops).
          () => (session.failed ??= new Error('the server ended the capture stream')),
          (err: Error) => {
            session.failed ??= err;
            reject(err);
          },
        );
      });
    } catch (err) {
      await client.end().catch(() => undefined);
      const code = (err as { code?: string }).code;
      // Another poller reads the slot: its turn.
      if (code === '55006') return undefined;
      if (code === '42704') throw new CaptureSlotMissingError(slot);
      throw err;
    }
    this.session = session;
    return session;
  }

  private receive(s: Session, chunk: Buffer): void {
    try {
      const kind = String.fromCharCode(chunk[0] ?? 0);
      if (kind === 'w') {
        // XLogData: start, end of WAL, send time, then one pgoutput message.
        const m = decodeMessage(chunk.subarray(25));
        s.messages.push(m);
        if (m.tag === 'commit' || (m.tag === 'message' && !m.transactional))
          s.whole = s.messages.length;
      } else if (kind === 'k') {
        // Keepalive: the WAL end sent so far, and whether a reply is wanted now.
        s.sentUpTo = chunk.readBigUInt64BE(1);
        if (chunk[17] === 1) this.sendStatus(s);
      }
    } catch (err) {
      s.failed ??= err as Error;
    }
  }
}

/** The parts of pg's Client that streaming uses and its types do not show. */
interface StreamingClient {
  connection: {
    on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
    once(event: 'replicationStart', listener: () => void): void;
    sendCopyFromChunk(chunk: Buffer): void;
  };
}
