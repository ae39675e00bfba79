// The rows a column pipeline's write puts in the source (docs/architecture.md, decision 18), with
// whether each one's text was cut to the model's limit, read from the content the write compared.
import { columnText, tooLongMessage } from '../src/chunking/column.js';
import type { Pipeline } from '../src/db/catalog.js';
import type { ColumnRow } from '../src/db/destination.js';
import type { SourceRow } from '../src/db/source.js';

export function columnRows(
  p: Pick<Pipeline, 'config'>,
  rows: readonly { pk: string; contentHash: string }[],
  current: ReadonlyMap<string, Pick<SourceRow, 'document'>>,
): ColumnRow[] {
  const cuts = p.config.destination?.truncate === true;
  return rows.map((r) => {
    const document = current.get(r.pk)?.document ?? '';
    const one = cuts ? columnText(p.config, document) : undefined;
    return {
      pk: r.pk,
      contentHash: r.contentHash,
      truncated: !!one && 'text' in one && one.truncated,
    };
  });
}

/**
 * The rows whose text is longer than the model takes, for a column pipeline that does not cut them:
 * each becomes a dead letter for that content, with a message naming the row, its length and the
 * limit, and keeps its column as it is (it is tried again when its content changes).
 */
export function tooLongRows(
  p: Pick<Pipeline, 'config'>,
  rows: readonly { pk: string; document: string | null; contentHash: string | null }[],
): { pk: string; contentHash: string; error: string }[] {
  if (!p.config.destination || p.config.destination.truncate) return [];
  return rows.flatMap((r) => {
    const one = columnText(p.config, r.document ?? '');
    return 'tooLong' in one
      ? [{ pk: r.pk, contentHash: r.contentHash ?? '', error: tooLongMessage(r.pk, one.tooLong) }]
      : [];
  });
}
