// Every identifier that reaches SQL passes through here.
import { createHash } from 'node:crypto';

/** Quotes one SQL identifier (table, column, schema) the way Postgres' quote_ident does, always. */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new Error('an SQL identifier must not be empty');
  if (name.includes('\u0000')) throw new Error('an SQL identifier must not contain NUL');
  return `"${name.replaceAll('"', '""')}"`;
}

/** schema.table, each part quoted. */
export function qualified(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/** A string literal, for the few places (DDL bodies) where a parameter cannot be used. */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('an SQL literal must not contain NUL');
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * Splits "schema.table" (either part possibly quoted) into its parts; schema defaults to public.
 */
export function parseTableName(name: string): { schema: string; table: string } {
  const parts: string[] = [];
  let i = 0;
  while (i < name.length) {
    if (name[i] === '"') {
      let j = i + 1;
      let part = '';
      for (;;) {
        if (j >= name.length) throw new Error(`unterminated quote in table name ${name}`);
        if (name[j] === '"') {
          if (name[j + 1] === '"') {
            part += '"';
            j += 2;
            continue;
          }
          break;
        }
        part += name[j];
        j += 1;
      }
      parts.push(part);
      i = j + 1;
    } else {
      const dot = name.indexOf('.', i);
      const end = dot === -1 ? name.length : dot;
      parts.push(name.slice(i, end).toLowerCase()); // unquoted names fold to lower case, as in Postgres
      i = end;
    }
    if (i < name.length) {
      if (name[i] !== '.') throw new Error(`unexpected character in table name ${name}`);
      i += 1;
    }
  }
  if (parts.length === 1 && parts[0]) return { schema: 'public', table: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { schema: parts[0], table: parts[1] };
  throw new Error(`table name ${name} must be "table" or "schema.table"`);
}

/** Postgres cuts identifiers at 63 bytes (NAMEDATALEN - 1); two long names could cut to one. */
const MAX_IDENT_BYTES = 63;

/**
 * `base` + `suffix`, within 63 bytes: a base too long is cut (at a character) and told apart by a
 * digest of the whole, so Postgres never truncates the name into another one.
 */
export function fitIdent(base: string, suffix: string): string {
  const whole = `${base}${suffix}`;
  if (Buffer.byteLength(whole) <= MAX_IDENT_BYTES) return whole;
  const digest = `_${createHash('sha256').update(base).digest('hex').slice(0, 8)}`;
  let cut = [...base];
  while (Buffer.byteLength(`${cut.join('')}${digest}${suffix}`) > MAX_IDENT_BYTES)
    cut = cut.slice(0, -1);
  return `${cut.join('')}${digest}${suffix}`;
}
