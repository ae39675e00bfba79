// Every workflow the worker registers. Deterministic code only.
export { syncChanges } from './sync.js';
export type { SyncInput, SyncResult } from './sync.js';
export { backfill } from './backfill.js';
export type { BackfillInput, BackfillResult, BackfillState } from './backfill.js';
