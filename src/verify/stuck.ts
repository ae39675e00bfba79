// What verify --requeue must say before sending keys round again: a stage that keeps failing fails
// them the same way, so requeueing alone repairs nothing until its cause is fixed.
import { readStuckBatches } from '../db/batch-failures.js';
import type { Pool } from '../db/pool.js';
import { stuckKeys } from '../db/staging.js';

export interface StuckWarning {
  stage: string;
  lastError: string;
  retryable: boolean;
  /**
   * How many of the differing keys are staged in batches stuck there (0: the stage holds others).
   */
  keys: number;
  batches: number;
}

/** The pipeline's stuck stages, with how many of `keys` each holds; empty when nothing is stuck. */
export async function stuckWarnings(
  pool: Pool,
  pipeline: string,
  keys: string[],
): Promise<StuckWarning[]> {
  const stuck = await readStuckBatches(pool, pipeline);
  if (stuck.length === 0) return [];
  const held = await stuckKeys(pool, pipeline, keys);
  const byStage = new Map<string, StuckWarning>();
  for (const b of stuck) {
    const w = byStage.get(b.stage) ?? {
      stage: b.stage,
      lastError: b.lastError,
      retryable: b.retryable,
      keys: 0,
      batches: 0,
    };
    w.batches += 1;
    byStage.set(b.stage, w);
  }
  for (const k of held) {
    const w = byStage.get(k.stage);
    if (w) w.keys += k.keys;
  }
  return [...byStage.values()];
}
