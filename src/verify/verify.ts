// Compares every source row's current content with its vectors: the convergence invariant,
// checkable by users too. Reads the source in key order, a page at a time, so it runs on tables of
// any size.
import { chunkDocument } from '../chunking/document.js';
import { getPipeline } from '../db/catalog.js';
import { qualified } from '../db/ident.js';
import type { Pool } from '../db/pool.js';
import { deadLetteredKeys } from '../db/dead-letters.js';
import { countTruncated, writeTarget } from '../db/destination.js';
import { quoteIdent } from '../db/ident.js';
import { keyMatches, readKeyPage, readSourceRows } from '../db/source.js';

export interface VerifyReport {
  pipeline: string;
  rows: number;
  /** Source rows with content but no vectors. */
  missing: string[];
  /** Source rows whose vectors are of other content, chunking, generation or metadata. */
  stale: string[];
  /**
   * Of the stale keys, those whose chunks or vectors (not just metadata) differ: a requeue must
   * embed them again.
   */
  staleContent: string[];
  /** Vectors whose source row is gone. */
  orphaned: string[];
  /**
   * Of the missing and stale keys, those in embedsync.dead_letters: refused by the provider, or in
   * a batch that failed for good.
   */
  deadLettered: string[];
  /** A column pipeline's rows embedded from a text cut to the model's limit (destination.truncate). */
  truncated?: number;
}

export async function verifyPipeline(
  pool: Pool,
  name: string,
  pageSize = 1000,
): Promise<VerifyReport> {
  const p = await getPipeline(pool, name);
  const report: VerifyReport = {
    pipeline: name,
    rows: 0,
    missing: [],
    stale: [],
    staleContent: [],
    orphaned: [],
    deadLettered: [],
  };
  const source = qualified(p.sourceSchema, p.sourceTable);
  const vectors = qualified(p.vectorSchema, p.vectorTable);
  // A column pipeline's record counts only where the column holds a vector (decision 18); it keeps
  // no chunk text, the hash stands for it.
  const target = writeTarget(p);
  const recorded = target
    ? `(select v.* from ${vectors} v join ${source} s on ${keyMatches(p, 's', 'v.pk')}
         where s.${quoteIdent(target.column)} is not null)`
    : vectors;

  let after: string | null = null;
  for (;;) {
    const keys = await readKeyPage(pool, p, after, pageSize);
    if (keys.length === 0) break;
    after = keys[keys.length - 1] ?? null;
    const rows = await readSourceRows(pool, p, keys);
    const { rows: stored } = await pool.query<{
      pk: string;
      chunks: string[];
      hashes: string[];
      generations: number[];
      metadata: string[];
    }>(
      `select pk, array_agg(chunk order by chunk_index) as chunks,
              array_agg(distinct content_hash) as hashes,
              array_agg(distinct generation) as generations,
              array_agg(distinct metadata::text) as metadata
         from ${recorded} v where pk = any($1::text[]) group by pk`,
      [keys],
    );
    const byKey = new Map(stored.map((s) => [s.pk, s]));
    for (const row of rows) {
      report.rows += 1;
      const expected = chunkDocument(p.config, row.document, row.context);
      const actual = byKey.get(row.pk);
      if (!actual) {
        if (expected.length > 0) report.missing.push(row.pk);
        continue;
      }
      const sameContent =
        actual.hashes.length === 1 &&
        actual.hashes[0] === row.contentHash &&
        actual.generations.length === 1 &&
        actual.generations[0] === p.generation &&
        actual.chunks.length === expected.length &&
        (target !== undefined || actual.chunks.every((c, i) => c === expected[i]));
      const sameMetadata = actual.metadata.length === 1 && actual.metadata[0] === row.metadata;
      if (!sameContent || !sameMetadata) report.stale.push(row.pk);
      if (!sameContent) report.staleContent.push(row.pk);
    }
  }
  const { rows: orphans } = await pool.query<{ pk: string }>(
    `select distinct v.pk from ${vectors} v
      where not exists (select 1 from ${source} s where ${keyMatches(p, 's', 'v.pk')}) order by 1`,
  );
  report.orphaned = orphans.map((r) => r.pk);
  report.deadLettered = await deadLetteredKeys(pool, name, [...report.missing, ...report.stale]);
  if (target) report.truncated = await countTruncated(pool, target);
  return report;
}
