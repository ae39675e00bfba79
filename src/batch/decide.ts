// What the fetch and write stages do with each key of a batch, decided from what they read: pure,
// so every branch is tested without a database. The activities read, call these, and write.

export type StagedAction = 'embed' | 'keep' | 'delete';

/** A source row as fetch reads it (src/db/source.ts). */
export interface FetchedRow {
  pk: string;
  document: string;
  /** The head of the document repeated on every chunk ('' when no column is repeated). */
  context: string;
  contentHash: string;
}

/** What the vector table holds for a key now: its chunk 0's content hash and generation. */
export interface EmbeddedHead {
  contentHash: string;
  generation: number;
}

/** One key as fetch stages it. The texts travel only for rows that are to be embedded. */
export interface StagedRow {
  pk: string;
  action: StagedAction;
  document: string | null;
  context: string | null;
  contentHash: string | null;
}

/**
 * Per key: a row whose content hash and generation match its vectors is kept (at most its metadata
 * moves), any other row is embedded, and a key with no row is deleted.
 */
export function decideFetch(
  keys: readonly string[],
  rows: readonly FetchedRow[],
  embedded: ReadonlyMap<string, EmbeddedHead>,
  generation: number,
): StagedRow[] {
  const staged: StagedRow[] = [];
  const present = new Set<string>();
  for (const row of rows) {
    present.add(row.pk);
    const now = embedded.get(row.pk);
    const unchanged = now?.contentHash === row.contentHash && now.generation === generation;
    staged.push({
      pk: row.pk,
      action: unchanged ? 'keep' : 'embed',
      document: unchanged ? null : row.document,
      context: unchanged || row.context === '' ? null : row.context,
      contentHash: row.contentHash,
    });
  }
  for (const key of new Set(keys)) {
    if (present.has(key)) continue;
    staged.push({ pk: key, action: 'delete', document: null, context: null, contentHash: null });
  }
  return staged;
}

export function countActions(staged: readonly Pick<StagedRow, 'action'>[]): {
  embed: number;
  keep: number;
  delete: number;
} {
  const count = (a: StagedAction) => staged.filter((r) => r.action === a).length;
  return { embed: count('embed'), keep: count('keep'), delete: count('delete') };
}

/** A staged key as write reads it back. */
export interface StagedForWrite {
  pk: string;
  action: StagedAction;
  contentHash: string | null;
  generation: number;
}

/** The source row as write reads it again, inside its transaction. */
export interface CurrentRow {
  contentHash: string;
  /** JSON text of the metadata object. */
  metadata: string;
}

export interface WritePlan {
  /** Rows whose vectors are replaced by their staged chunks, with this hash and metadata. */
  replace: { pk: string; contentHash: string; metadata: string }[];
  /** Rows whose content is unchanged: their metadata is brought up to date. */
  keep: { pk: string; metadata: string }[];
  /** Keys whose source row is gone: their vectors are deleted. */
  remove: string[];
  /** Keys whose vectors go before the staged chunks are written: replaced and removed ones. */
  deleteVectors: string[];
  /** Keys dropped by compare-and-set: their row (or the generation) moved on since fetch. */
  stale: number;
  /**
   * Dead letters no longer true. A key embedded or gone loses all its letters; a key found
   * unchanged loses only a whole-batch failure's (content hash ''): a row the provider refused in
   * this very batch is 'keep' and keeps its letter.
   */
  clearLetters: { allOf: string[]; batchFailuresOf: string[] };
}

/**
 * Compare-and-set: a staged key is written only if the pipeline is still at the generation it was
 * staged for and its source row still has the content hash fetch saw (or, for a delete, is still
 * gone). Otherwise the newer change is already in the outbox and a later batch writes it.
 */
export function decideWrite(
  staged: readonly StagedForWrite[],
  current: ReadonlyMap<string, CurrentRow>,
  generation: number,
): WritePlan {
  const plan: WritePlan = {
    replace: [],
    keep: [],
    remove: [],
    deleteVectors: [],
    stale: 0,
    clearLetters: { allOf: [], batchFailuresOf: [] },
  };
  for (const row of staged) {
    const now = current.get(row.pk);
    if (row.generation !== generation) plan.stale += 1;
    else if (row.action === 'delete') {
      if (now === undefined) plan.remove.push(row.pk);
      else plan.stale += 1;
    } else if (now === undefined || now.contentHash !== row.contentHash) plan.stale += 1;
    else if (row.action === 'embed')
      plan.replace.push({ pk: row.pk, contentHash: now.contentHash, metadata: now.metadata });
    else plan.keep.push({ pk: row.pk, metadata: now.metadata });
  }
  const replaced = plan.replace.map((r) => r.pk);
  plan.deleteVectors = [...replaced, ...plan.remove];
  plan.clearLetters = {
    allOf: [...replaced, ...plan.remove],
    batchFailuresOf: plan.keep.map((r) => r.pk),
  };
  return plan;
}
