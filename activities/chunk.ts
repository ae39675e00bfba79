// Stage 2: split each changed row's document into chunks.
import { chunkDocument } from '../src/chunking/document.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { withTransaction } from '../src/db/pool.js';
import {
  deleteChunksBeyond,
  markRowsKept,
  readRowsToChunk,
  upsertStagedChunks,
  type ChunkColumns,
} from '../src/db/staging.js';
import { recordRefusedRows } from '../src/db/dead-letters.js';
import type { ActivityDeps } from './deps.js';
import { tooLongRows } from './column-rows.js';
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
      const all = await readRowsToChunk(pool, batchId);
      // A column pipeline's text longer than the model takes is refused before it is paid for.
      const tooLong = tooLongRows(
        p,
        all.map((r) => ({ ...r, contentHash: null })),
      );
      const rows = all.filter((r) => !tooLong.some((l) => l.pk === r.pk));
      const chunks: ChunkColumns = { pk: [], index: [], text: [] };
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
        if (tooLong.length > 0) {
          await recordRefusedRows(
            client,
            pipeline,
            batchId,
            new Map(tooLong.map((l) => [l.pk, l.error])),
          );
          await markRowsKept(
            client,
            batchId,
            tooLong.map((l) => l.pk),
          );
        }
        await upsertStagedChunks(client, batchId, chunks);
        await deleteChunksBeyond(client, batchId, counts);
      });
      return { rows: rows.length, chunks: chunks.text.length };
    });
  };
}
