// Stage 2: split each changed row's document into chunks.
import { chunkDocument } from '../src/chunking/document.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { withTransaction } from '../src/db/pool.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';
import type { BatchRef, ChunkResult } from './types.js';

export function createChunkBatch({ pool }: ActivityDeps) {
  return async function chunkBatch({
    pipeline,
    batchId,
    generation,
  }: BatchRef): Promise<ChunkResult> {
    return classified(async () => {
      const p = atGeneration(await getPipeline(pool, pipeline), generation);
      if (!p) return { rows: 0, chunks: 0 };
      const { rows } = await pool.query<{ pk: string; document: string; context: string | null }>(
        `select pk, document, context from embedsync.staged_rows where batch_id = $1 and action = 'embed'`,
        [batchId],
      );
      const chunks = { pk: [] as string[], index: [] as number[], text: [] as string[] };
      const counts = { pk: [] as string[], n: [] as number[] };
      for (const row of rows) {
        // Measured in the model's unit: cl100k tokens for OpenAI's models, characters otherwise.
        const pieces = chunkDocument(p.config, row.document, row.context);
        pieces.forEach((text, i) => {
          chunks.pk.push(row.pk);
          chunks.index.push(i);
          chunks.text.push(text);
        });
        counts.pk.push(row.pk);
        counts.n.push(pieces.length);
      }
      await withTransaction(pool, async (client) => {
        // A chunk keeps a vector from an earlier attempt only if its text is the same.
        await client.query(
          `insert into embedsync.staged_chunks as c (batch_id, pk, chunk_index, chunk)
           select $1, s.pk, s.i, s.chunk from unnest($2::text[], $3::int[], $4::text[]) as s(pk, i, chunk)
           on conflict (batch_id, pk, chunk_index) do update
             set chunk = excluded.chunk,
                 embedding = case when c.chunk = excluded.chunk then c.embedding end`,
          [batchId, chunks.pk, chunks.index, chunks.text],
        );
        await client.query(
          `delete from embedsync.staged_chunks c using unnest($2::text[], $3::int[]) as s(pk, n)
            where c.batch_id = $1 and c.pk = s.pk and c.chunk_index >= s.n`,
          [batchId, counts.pk, counts.n],
        );
      });
      return { rows: rows.length, chunks: chunks.text.length };
    });
  };
}
