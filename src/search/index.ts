// The query API: search a pipeline's vectors with text and metadata filters, optionally hybrid.
export { search, SearchError, type SearchOptions } from './search.js';
export type { SearchHit } from './query.js';
export { RerankError } from './rerank.js';
export {
  DEFAULT_FUSION,
  fuseRankings,
  rrfScore,
  type FusedRank,
  type FusionWeights,
} from './fusion.js';
export {
  checkFilterKeys,
  FilterError,
  FILTER_SYNTAX,
  filterTypeProblem,
  parseFilter,
  type FilterOp,
  type FilterValue,
  type MetadataColumn,
  type MetadataFilter,
} from './filters.js';
