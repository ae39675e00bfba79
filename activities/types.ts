// What crosses the Temporal boundary: keys, counts, hashes. Never texts or vectors.

export interface BatchRef {
  pipeline: string;
  /** Names the batch's rows in the staging tables. */
  batchId: string;
  /**
   * The generation the batch is for: the live one (the default) writes the vector table; during a
   * re-embed the pending one writes the swap table. Work for a generation that is gone is dropped.
   */
  generation?: number;
}

export interface FetchInput extends BatchRef {
  keys: string[];
}

export interface FetchResult {
  generation: number;
  /** Rows whose content changed: they get chunked and embedded. */
  embed: number;
  /** Rows whose content is unchanged: at most their metadata moves. */
  keep: number;
  /** Keys whose source row is gone. */
  delete: number;
}

export interface ChunkResult {
  rows: number;
  chunks: number;
}

export interface EmbedResult {
  /** Chunks embedded by this attempt (chunks embedded by an earlier attempt are not sent again). */
  embedded: number;
  tokens: number;
  requests: number;
}

export interface WriteInput extends BatchRef {
  /** Also remove vectors of every row no longer in the source (a TRUNCATE was captured). */
  sweep: boolean;
  /**
   * When the batch's earliest change entered the outbox (ISO 8601), for the commit → vector latency
   * metric; absent for backfills, and in syncs started before it existed.
   */
  enqueuedAt?: string;
}

export interface WriteResult {
  /** Rows whose chunks were replaced. */
  written: number;
  /** Rows whose metadata alone was updated. */
  metadataUpdated: number;
  deleted: number;
  /** Rows dropped because the source moved on since fetch (a newer change is queued). */
  stale: number;
  /** Vector rows removed by a sweep. */
  swept: number;
  /** The pipeline's sinks, which the sync delivers the batch's changes to after this write. */
  sinks?: number;
}

export interface CheckpointResult {
  /** Keys after the cursor, counted up to the cap the walk asked for. */
  ahead: number;
  /** The walk's total from here: exact once fewer than the cap are left (see totalAfterCount). */
  total: number;
}
