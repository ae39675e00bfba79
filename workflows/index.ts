// Every workflow the worker registers. Deterministic code only.
export { syncChanges } from './sync.js';
export type { SyncInput, SyncResult, SyncTarget } from './sync.js';
export { backfill } from './backfill.js';
export type { BackfillInput, BackfillResult, BackfillState } from './backfill.js';
export { reembed } from './reembed.js';
export type { ReembedInput, ReembedResult } from './reembed.js';
export { batchBackfill } from './batch-backfill.js';
export type {
  BatchBackfillInput,
  BatchBackfillResult,
  BatchBackfillState,
} from './batch-backfill.js';
export { upkeep } from './upkeep.js';
export type { UpkeepInput, UpkeepResult } from './upkeep.js';
