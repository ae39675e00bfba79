// backfill: embeds a pipeline's existing rows. Pages through primary keys (keyset), runs a bounded
// window of batches through the same four stages as change sync, checkpoints after every page (in its
// continue-as-new input and in the catalog), pauses and resumes on signals, answers a progress query.
// Rows already embedded with the same content are skipped by fetch, so a resumed backfill never pays
// for them again.
import {
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { processBatch } from './batch.js';
import { pauseSignal, progressQuery, resumeSignal, type BackfillProgress } from './definitions.js';

export interface BackfillInput {
  pipeline: string;
  embedTaskQueue: string;
  /** Keys per batch. */
  batchSize: number;
  /** Batches in flight at once. */
  window: number;
  /** Carried across continue-as-new; absent on the first run. */
  state?: BackfillState;
  /** Continue as new after this many history events even if the server has not suggested it yet. */
  maxHistoryEvents?: number;
}

export interface BackfillState {
  cursor: string | null;
  processed: number;
  total: number;
  tokens: number;
  pages: number;
  paused: boolean;
}

export interface BackfillResult { processed: number; total: number; tokens: number }

const control = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function backfill(input: BackfillInput): Promise<BackfillResult> {
  const { pipeline } = input;
  const batchPrefix = `backfill:${pipeline}:`;
  let phase: BackfillProgress['phase'] = input.state ? 'running' : 'counting';
  let paused = input.state?.paused ?? false;
  const runStarted = Date.now();
  const runStartProcessed = input.state?.processed ?? 0;
  const state: BackfillState = input.state ?? { cursor: null, processed: 0, total: 0, tokens: 0, pages: 0, paused };

  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => void (paused = false));
  setHandler(progressQuery, (): BackfillProgress => {
    const elapsed = (Date.now() - runStarted) / 1000;
    const done = state.processed - runStartProcessed;
    const rate = elapsed > 0 && done > 0 ? done / elapsed : null;
    const left = Math.max(state.total - state.processed, 0);
    return { phase: paused && phase === 'running' ? 'paused' : phase, processed: state.processed, total: phase === 'counting' ? null : state.total, rowsPerSecond: rate, etaSeconds: rate ? left / rate : null, paused, cursor: state.cursor };
  });

  try {
    if (!input.state) state.total = await control.startBackfill({ pipeline });
    phase = 'running';
    for (;;) {
      if (paused) {
        setCurrentDetails(`Paused at ${state.processed} of ${state.total} rows`);
        // Waits on the signal alone: no timer churn while paused.
        await condition(() => !paused);
      }
      const keys = await control.scanKeys({ pipeline, after: state.cursor, limit: input.batchSize * input.window });
      if (keys.length === 0) break;
      const page = state.pages;
      const outcomes = await Promise.all(
        slices(keys, input.batchSize).map((slice, i) =>
          processBatch({ pipeline, batchId: `${batchPrefix}${page}-${i}`, keys: slice, sweep: false }, input.embedTaskQueue),
        ),
      );
      state.cursor = keys[keys.length - 1] ?? state.cursor;
      state.processed += keys.length;
      state.pages += 1;
      const tokens = outcomes.reduce((sum, o) => sum + o.tokens, 0);
      state.tokens += tokens;
      await control.checkpointBackfill({ pipeline, cursor: state.cursor, processed: state.processed, tokens });
      setCurrentDetails(`${state.processed} of ${state.total} rows embedded`);
      const now = workflowInfo();
      if (now.continueAsNewSuggested || now.historyLength > (input.maxHistoryEvents ?? 8000)) {
        state.paused = paused;
        await continueAsNew<typeof backfill>({ ...input, state });
      }
    }
    phase = 'finishing';
    await control.finishBackfill({ pipeline, outcome: 'completed', batchPrefix });
    phase = 'done';
    return { processed: state.processed, total: state.total, tokens: state.tokens };
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() => control.finishBackfill({ pipeline, outcome: 'cancelled', batchPrefix }));
    }
    throw err;
  }
}

function slices<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
