// Stage 1: read the batch's source rows, decide per key what must happen (src/batch/decide.ts),
// and stage the texts.
import { countActions, decideFetch } from '../src/batch/decide.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { withTransaction } from '../src/db/pool.js';
import { readSourceRows } from '../src/db/source.js';
import { clearStagedRows, insertStagedRows } from '../src/db/staging.js';
import { readEmbeddedHeads } from '../src/db/vectors.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';
import { followingSchemaChanges } from './schema.js';
import type { FetchInput, FetchResult } from './types.js';

export function createFetchBatch(deps: ActivityDeps) {
  const { pool } = deps;
  return async function fetchBatch({
    pipeline,
    batchId,
    keys,
    generation,
  }: FetchInput): Promise<FetchResult> {
    return classified(() =>
      followingSchemaChanges(deps, pipeline, async () => {
        const live = await getPipeline(pool, pipeline);
        const p = atGeneration(live, generation);
        if (!p) {
          await clearStagedRows(pool, batchId);
          return { generation: generation ?? live.generation, embed: 0, keep: 0, delete: 0 };
        }
        const rows = await readSourceRows(pool, p, keys);
        const embedded = await readEmbeddedHeads(
          pool,
          p,
          rows.map((r) => r.pk),
        );
        const staged = decideFetch(keys, rows, embedded, p.generation);
        await withTransaction(pool, async (client) => {
          // A retry starts the batch afresh: whatever an earlier attempt staged is replaced.
          await clearStagedRows(client, batchId);
          await insertStagedRows(client, batchId, p.generation, staged);
        });
        return { generation: p.generation, ...countActions(staged) };
      }),
    );
  };
}
