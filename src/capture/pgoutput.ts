// Decodes the messages of PostgreSQL's built-in pgoutput plugin, protocol version 1 ("Logical
// Replication Message Formats" in PostgreSQL's documentation), as a replication stream carries them
// (one per XLogData) and pg_logical_slot_peek_binary_changes returns them (one per row). Pure: bytes
// in, messages out; what they mean for the outbox is src/capture/wal-changes.ts's.

/** A column's value in a tuple: null, unchanged TOAST (not sent), or its text form. */
export type TupleValue = null | { unchanged: true } | string;

export interface RelationColumn {
  name: string;
  /** Part of the replica identity (the primary key, by default). */
  key: boolean;
  typeOid: number;
}

export type PgOutputMessage =
  | { tag: 'begin'; finalLsn: bigint; xid: number }
  | { tag: 'commit'; commitLsn: bigint; endLsn: bigint }
  | {
      tag: 'relation';
      relid: number;
      schema: string;
      table: string;
      columns: RelationColumn[];
    }
  | { tag: 'insert'; relid: number; row: TupleValue[] }
  | {
      tag: 'update';
      relid: number;
      /** The old key ('K', when the key changed) or the whole old row ('O', REPLICA IDENTITY FULL). */
      old?: { kind: 'key' | 'row'; row: TupleValue[] };
      row: TupleValue[];
    }
  | { tag: 'delete'; relid: number; old: { kind: 'key' | 'row'; row: TupleValue[] } }
  | { tag: 'truncate'; relids: number[] }
  /** A logical message (pg_logical_emit_message); `lsn` is where it is in the WAL. */
  | { tag: 'message'; transactional: boolean; lsn: bigint; prefix: string }
  /** Origin and type messages: nothing the outbox needs. */
  | { tag: 'other'; type: string };

export class PgOutputError extends Error {
  constructor(message: string) {
    super(`pgoutput: ${message}`);
    this.name = 'PgOutputError';
  }
}

/** A cursor over one message. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  byte(): string {
    this.need(1);
    return String.fromCharCode(this.buf[this.at++] as number);
  }
  int8(): number {
    this.need(1);
    return this.buf.readUInt8(this.at++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.at);
    this.at += 8;
    return v;
  }
  string(): string {
    const end = this.buf.indexOf(0, this.at);
    if (end < 0) throw new PgOutputError('a string runs past the end of the message');
    const s = this.buf.toString('utf8', this.at, end);
    this.at = end + 1;
    return s;
  }
  text(length: number): string {
    this.need(length);
    const s = this.buf.toString('utf8', this.at, this.at + length);
    this.at += length;
    return s;
  }
  private need(n: number): void {
    if (this.at + n > this.buf.length)
      throw new PgOutputError(`message ends after ${this.buf.length} bytes, ${n} more expected`);
  }
}

function tuple(r: Reader): TupleValue[] {
  const n = r.int16();
  const values: TupleValue[] = [];
  for (let i = 0; i < n; i += 1) {
    const kind = r.byte();
    if (kind === 'n') values.push(null);
    else if (kind === 'u') values.push({ unchanged: true });
    else if (kind === 't') values.push(r.text(r.int32()));
    else throw new PgOutputError(`unknown tuple value kind '${kind}'`);
  }
  return values;
}

/** 'K' or 'O' and its tuple, when the next byte is one of them; the reader stays put otherwise. */
function oldTuple(r: Reader, first: string): { kind: 'key' | 'row'; row: TupleValue[] } {
  if (first === 'K') return { kind: 'key', row: tuple(r) };
  if (first === 'O') return { kind: 'row', row: tuple(r) };
  throw new PgOutputError(`expected 'K' or 'O', got '${first}'`);
}

/** One pgoutput message (protocol version 1). */
export function decodeMessage(data: Buffer): PgOutputMessage {
  const r = new Reader(data);
  const tag = r.byte();
  switch (tag) {
    case 'B': {
      const finalLsn = r.int64();
      r.int64(); // commit timestamp
      return { tag: 'begin', finalLsn, xid: r.uint32() };
    }
    case 'C': {
      r.int8(); // flags, unused
      const commitLsn = r.int64();
      return { tag: 'commit', commitLsn, endLsn: r.int64() };
    }
    case 'R': {
      const relid = r.uint32();
      const schema = r.string();
      const table = r.string();
      r.int8(); // replica identity setting
      const n = r.int16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i += 1) {
        const flags = r.int8();
        const name = r.string();
        const typeOid = r.uint32();
        r.int32(); // type modifier
        columns.push({ name, key: (flags & 1) === 1, typeOid });
      }
      return { tag: 'relation', relid, schema, table, columns };
    }
    case 'I': {
      const relid = r.uint32();
      const n = r.byte();
      if (n !== 'N') throw new PgOutputError(`insert: expected 'N', got '${n}'`);
      return { tag: 'insert', relid, row: tuple(r) };
    }
    case 'U': {
      const relid = r.uint32();
      let next = r.byte();
      let old: { kind: 'key' | 'row'; row: TupleValue[] } | undefined;
      if (next === 'K' || next === 'O') {
        old = oldTuple(r, next);
        next = r.byte();
      }
      if (next !== 'N') throw new PgOutputError(`update: expected 'N', got '${next}'`);
      const row = tuple(r);
      return old ? { tag: 'update', relid, old, row } : { tag: 'update', relid, row };
    }
    case 'D': {
      const relid = r.uint32();
      return { tag: 'delete', relid, old: oldTuple(r, r.byte()) };
    }
    case 'T': {
      const n = r.int32();
      r.int8(); // CASCADE / RESTART IDENTITY
      const relids: number[] = [];
      for (let i = 0; i < n; i += 1) relids.push(r.uint32());
      return { tag: 'truncate', relids };
    }
    case 'M': {
      const transactional = (r.int8() & 1) === 1;
      const lsn = r.int64();
      return { tag: 'message', transactional, lsn, prefix: r.string() };
    }
    default:
      return { tag: 'other', type: tag };
  }
}

/** An LSN as PostgreSQL prints it: 18/5177D318. */
export const formatLsn = (lsn: bigint): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
