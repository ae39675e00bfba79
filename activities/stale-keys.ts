// The writers' part in clearing stale vectors (docs/architecture.md, decision 19): before the source
// rows are read again under the key locks, the snapshot; after the write, in the same transaction,
// the marks that snapshot sees of the keys now in step go (src/db/stale-keys.ts). Only a write to
// the live generation settles: a re-embed's table is not what search reads until its swap.
import type { Pipeline } from '../src/db/catalog.js';
import type { Queryable } from '../src/db/pool.js';
import {
  clearsOnChange,
  readSnapshot,
  settleStaleKeys,
  sweepStaleKeys,
} from '../src/db/stale-keys.js';

export interface StaleKeysSettler {
  settle(
    keys: readonly string[],
    current: ReadonlyMap<string, { contentHash: string }>,
  ): Promise<void>;
  /** After a TRUNCATE's sweep. */
  sweep(): Promise<void>;
}

const NOTHING: StaleKeysSettler = { settle: async () => {}, sweep: async () => {} };

/** Call under the key locks, before reading the source rows; `live` is the catalog row as locked. */
export async function staleKeysSettler(
  db: Queryable,
  live: Pipeline,
  p: Pipeline,
): Promise<StaleKeysSettler> {
  if (p.generation !== live.generation || !clearsOnChange(p.config)) return NOTHING;
  const snapshot = await readSnapshot(db);
  return {
    settle: async (keys, current) => {
      await settleStaleKeys(db, p, keys, current, snapshot);
    },
    sweep: async () => {
      await sweepStaleKeys(db, p, snapshot);
    },
  };
}
