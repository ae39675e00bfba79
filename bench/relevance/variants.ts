// The retrieval set-ups the relevance benchmark compares, as data: each is a pipeline (the demo's,
// with this embedding and any other pipeline settings) and the search options it is queried with.
// Variants whose pipeline settings are equal share one table and one backfill.
import type { PipelineInput } from '../../src/config/pipeline.js';
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

export const VARIANTS: readonly Variant[] = [
  {
    name: 'offline',
    about: 'the offline feature-hashing provider (the demo pipeline), vector search only',
    pipeline: { embedding: OFFLINE },
    search: {},
  },
];
