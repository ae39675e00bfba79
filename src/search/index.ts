// The query API: search a pipeline's vectors with text and metadata filters.
export { search, SearchError, type SearchOptions } from './search.js';
export type { SearchHit } from './query.js';
export { RerankError } from './rerank.js';
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
