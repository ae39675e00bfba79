// A pipeline's state as status tells it. The catalog records that a walk (a backfill or a re-embed)
// started and, from the walk's own last step, that it ended; a walk that never reached that step (a
// terminated workflow, one failed by a worker whose code predates the step) leaves the catalog
// saying it runs. Temporal knows whether one does, so status does not repeat the claim.
import type { PipelineWorkflows } from './temporal.js';

const WALKS: Partial<Record<string, { walk: string; command: string }>> = {
  backfilling: { walk: 'backfill', command: 'backfill' },
  reembedding: { walk: 're-embed', command: 'reembed' },
};

/**
 * Whether the catalog says a walk runs that Temporal does not run. Unknown (false) when Temporal
 * could not be asked.
 */
export function walkMissing(state: string, workflows: PipelineWorkflows | null): boolean {
  return WALKS[state] !== undefined && workflows !== null && workflows.backfill === null;
}

/** "backfilling", or what is true instead when no backfill runs. */
export function stateWords(p: { pipeline: string; state: string; walkMissing?: boolean }): string {
  const w = WALKS[p.state];
  if (!p.walkMissing || !w) return p.state;
  return `${p.state} per the catalog, but no ${w.walk} is running: it ended without finishing (stuck, below, says why if it failed); npx embedsync ${w.command} --table ${p.pipeline} runs it again`;
}
