// Building a vector table's HNSW index once a walk has filled it (src/capture/vector-index.ts):
// after a backfill or re-embed that started on an empty table, however it ended.
import { buildTextIndex } from '../src/capture/text-index.js';
import { buildIndex } from '../src/capture/vector-index.js';
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';

export interface IndexInput {
  pipeline: string;
  /** Absent: the live generation's table; a re-embed's pending one: its swap table. */
  generation?: number;
}

export function createVectorIndexActivities({ pool, log, indexBuildMemory }: ActivityDeps) {
  return {
    /**
     * Builds the HNSW index if the table lacks it, and the full-text index; returns whether it built
     * the HNSW index.
     */
    async buildVectorIndex({ pipeline, generation }: IndexInput): Promise<boolean> {
      return classified(async () => {
        const p = atGeneration(await getPipeline(pool, pipeline), generation);
        if (!p) return false; // that generation is gone, and its table with it
        const started = performance.now();
        const built = await buildIndex(pool, p, indexBuildMemory);
        // A re-embed's swap table is made without its full-text index too (decision 27).
        if (await buildTextIndex(pool, p))
          log.info({ pipeline, table: p.vectorTable }, 'full-text index built');
        if (built) {
          const seconds = Math.round((performance.now() - started) / 100) / 10;
          log.info({ pipeline, table: p.vectorTable, seconds }, 'vector index built');
        }
        return built;
      });
    },
  };
}
