// Stage 2: split each changed row's document into chunks.
import { chunkDocument } from '../src/chunking/document.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { withTransaction } from '../src/db/pool.js';
import {
  deleteChunksBeyond,
  readRowsToChunk,
  upsertStagedChunks,
  type ChunkColumns,
} from '../src/db/staging.js';
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
      const rows = await readRowsToChunk(pool, batchId);
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
        await upsertStagedChunks(client, batchId, chunks);
        await deleteChunksBeyond(client, batchId, counts);
      });
      return { rows: rows.length, chunks: chunks.text.length };
    });
  };
}
