// Stage 3: embed the staged chunks that have no vector yet. Each request's vectors are committed as
// soon as they arrive, so a retry (of this stage or a later one) never pays for them again.
import { Context } from '@temporalio/activity';
import { toSql } from 'pgvector';
import { getPipeline } from '../src/db/catalog.js';
import { getProvider } from '../src/providers/types.js';
import type { ActivityDeps } from './deps.js';
import { classified, DimensionMismatchError } from './errors.js';
import type { BatchRef, EmbedResult } from './types.js';

export function createEmbedBatch({ pool, providers, log }: ActivityDeps) {
  return async function embedBatch({ pipeline, batchId }: BatchRef): Promise<EmbedResult> {
    return classified(async () => {
      const p = await getPipeline(pool, pipeline);
      const provider = getProvider(providers, p.config.embedding.provider);
      const { model, dimensions } = p.config.embedding;
      const { rows } = await pool.query<{ pk: string; chunk_index: number; chunk: string }>(
        `select pk, chunk_index, chunk from embedsync.staged_chunks
          where batch_id = $1 and embedding is null order by pk, chunk_index`,
        [batchId],
      );
      const result: EmbedResult = { embedded: 0, tokens: 0, requests: 0 };
      for (let start = 0; start < rows.length; start += provider.maxInputsPerRequest) {
        const slice = rows.slice(start, start + provider.maxInputsPerRequest);
        const { vectors, tokens } = await provider.embed({ model, dimensions, inputType: 'document', texts: slice.map((r) => r.chunk) });
        const wrong = vectors.find((v) => v.length !== dimensions);
        if (wrong || vectors.length !== slice.length) throw new DimensionMismatchError(dimensions, wrong?.length ?? -1);
        await pool.query(
          `update embedsync.staged_chunks c set embedding = s.embedding::vector
             from unnest($2::text[], $3::int[], $4::text[]) as s(pk, i, embedding)
            where c.batch_id = $1 and c.pk = s.pk and c.chunk_index = s.i`,
          [batchId, slice.map((r) => r.pk), slice.map((r) => r.chunk_index), vectors.map((v) => toSql(v) as string)],
        );
        result.embedded += slice.length;
        result.tokens += tokens;
        result.requests += 1;
        Context.current().heartbeat(result);
      }
      log.debug({ pipeline, batch: batchId, provider: provider.name, model, ...result }, 'chunks embedded');
      return result;
    });
  };
}
