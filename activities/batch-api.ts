// What a batch-mode backfill's activities share (docs/architecture.md, decision 17): a part's
// reference, the pipeline as the part's generation sees it, and the Batch API for its config.
import { atGeneration, getPipeline, type Pipeline } from '../src/db/catalog.js';
import { BatchNotOfferedError, OpenAIBatches } from '../src/providers/openai-batch.js';
import { getProvider } from '../src/providers/types.js';
import type { ActivityDeps } from './deps.js';

export interface PartRef {
  pipeline: string;
  /** The backfill that owns the part (stable across continue-as-new). */
  backfill: string;
  part: number;
  /** A re-embed's pending generation (its swap table); absent: the live one. */
  generation?: number;
}

export function batchContext({ pool, providers }: ActivityDeps) {
  return {
    /** The pipeline as the generation sees it; the live one if that generation is gone. */
    pipelineAt: async (name: string, generation: number | undefined): Promise<Pipeline> => {
      const live = await getPipeline(pool, name);
      return atGeneration(live, generation) ?? live;
    },

    /** The Batch API with the pipeline's OpenAI config (client and key: OpenAIProvider's). */
    batchesFor: (p: Pipeline): OpenAIBatches => {
      const e = p.config.embedding;
      if (e.provider !== 'openai') throw new BatchNotOfferedError(p.name, e.provider);
      return new OpenAIBatches(getProvider(providers, 'openai'), e);
    },
  };
}
