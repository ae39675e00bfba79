// Watching a backfill from a terminal: a live bar fed by the workflow's progress query, or a line
// every few seconds when stdout is a pipe or a log. Ctrl-C stops the watching, never the backfill.
import type { Client } from '@temporalio/client';
import cliProgress from 'cli-progress';
import type { BackfillProgress } from '../../workflows/definitions.js';
import type { BackfillResult } from '../../workflows/index.js';
import type { TableWalkHandle } from '../status/temporal.js';
import { queryProgress } from '../status/index.js';
import { count, duration, percent, progressText, rate } from './format.js';

export type WatchOutcome = { kind: 'done'; result: BackfillResult } | { kind: 'detached' };

/**
 * Ctrl-C, caught from the moment a command says it started a walk: it then stops the watching only.
 */
export interface Interrupt {
  readonly interrupted: Promise<void>;
  dispose(): void;
}

/** Catches SIGINT from now on; take it before printing the line a user may answer with Ctrl-C. */
export function catchInterrupt(): Interrupt {
  let onSigint: () => void = () => undefined;
  const interrupted = new Promise<void>((resolve) => {
    onSigint = () => resolve();
    process.on('SIGINT', onSigint);
  });
  return { interrupted, dispose: () => void process.off('SIGINT', onSigint) };
}

export interface WatchOptions {
  pipeline: string;
  /** Source rows counted when the backfill was started, until the workflow has counted its own. */
  rows: number;
  tty: boolean;
  /** How often a line is printed when stdout is not a terminal. */
  lineEveryMs?: number;
  /** The task queue a worker must poll, for the hint shown when none answers. */
  taskQueue: string;
}

interface Display {
  update(progress: BackfillProgress | null, silentForMs: number): void;
  /** Shows the final count, which the last progress answer may not have reached. */
  complete(result: BackfillResult): void;
  stop(): void;
}

/**
 * After this long without an answer to the progress query, say that no worker seems to be there.
 */
const NO_WORKER_HINT_AFTER_MS = 10_000;

export async function watchBackfill(
  client: Client,
  handle: TableWalkHandle,
  options: WatchOptions,
  interrupt: Interrupt = catchInterrupt(),
): Promise<WatchOutcome> {
  const display = options.tty ? barDisplay(options) : lineDisplay(options);
  let stopped = false;
  let wake: () => void = () => undefined;
  const detached = interrupt.interrupted.then((): WatchOutcome => ({ kind: 'detached' }));
  // The result is a long poll; closing the connection would wait for it (up to 20 s), so it is
  // cancelled.
  const abort = new AbortController();
  const finished = client
    .withAbortSignal(abort.signal, () => handle.result())
    .then((result): WatchOutcome => ({ kind: 'done', result }));
  finished.catch(() => undefined); // cancelled once detached: expected

  // One controller per query: the SDK leaves a listener on the signal it is given.
  let queryAbort = new AbortController();
  const polling = (async () => {
    let lastAnswer = Date.now();
    while (!stopped) {
      queryAbort = new AbortController();
      const signal = queryAbort.signal;
      const progress = await client.withAbortSignal(signal, () =>
        queryProgress(client, handle, 2000),
      );
      if (progress) lastAnswer = Date.now();
      if (!stopped) display.update(progress, Date.now() - lastAnswer);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.tty ? 500 : 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();

  let outcome: WatchOutcome | undefined;
  try {
    outcome = await Promise.race([finished, detached]);
    return outcome;
  } finally {
    stopped = true;
    abort.abort();
    queryAbort.abort();
    wake();
    await polling;
    if (outcome?.kind === 'done') display.complete(outcome.result);
    display.stop();
    interrupt.dispose();
  }
}

function noWorkerHint(o: WatchOptions): string {
  return `no worker has answered yet: is \`npx embedsync worker\` running with EMBEDSYNC_TASK_QUEUE=${o.taskQueue}?`;
}

function barDisplay(o: WatchOptions): Display {
  const bar = new cliProgress.SingleBar({
    format: `${o.pipeline} {bar} {percent} {done}/{all} rows | {speed} | {left} {note}`,
    stream: process.stdout,
    hideCursor: true,
    barsize: 30,
    fps: 5,
    barCompleteChar: '█',
    barIncompleteChar: '░',
  });
  let total = o.rows;
  let last: BackfillProgress | null = null;
  // Rate and ETA are the workflow's, over its running time: this command's own clock would count
  // pauses.
  const payload = (p: BackfillProgress | null, note: string) => ({
    percent: percent(p?.processed ?? 0, total) || '0%',
    done: count(p?.processed ?? 0),
    all: count(Math.max(total, p?.processed ?? 0)),
    speed: rate(p?.rowsPerSecond ?? null),
    left: eta(p),
    note,
  });
  bar.start(Math.max(total, 1), 0, payload(null, ''));
  return {
    update(p, silentForMs) {
      if (p?.total != null && p.total !== total) {
        total = p.total;
        bar.setTotal(Math.max(total, 1));
      }
      const silent =
        silentForMs > NO_WORKER_HINT_AFTER_MS
          ? '(no worker answering: is `npx embedsync worker` running?)'
          : '';
      const note = !p ? silent : p.phase === 'counting' ? '(counting rows…)' : '';
      last = p ?? last;
      bar.update(last?.processed ?? 0, payload(last, note));
    },
    complete(result) {
      total = result.total;
      bar.setTotal(Math.max(total, 1));
      const pct = percent(result.processed, total) || '100%';
      const done = { done: count(result.processed), all: count(total), percent: pct };
      bar.update(result.processed, { ...payload(last, ''), ...done, left: 'done' });
    },
    stop: () => bar.stop(),
  };
}

/** No ETA while paused or pausing: the time left depends on when it is resumed. */
function eta(p: BackfillProgress | null): string {
  if (p?.phase === 'paused') return 'paused';
  if (p?.phase === 'pausing') return 'pausing';
  return `ETA ${p?.etaSeconds == null ? '…' : duration(p.etaSeconds)}`;
}

function lineDisplay(o: WatchOptions): Display {
  const every = o.lineEveryMs ?? 5000;
  let lastPrinted = Date.now();
  let hinted = false;
  return {
    update(p, silentForMs) {
      if (!p && silentForMs > NO_WORKER_HINT_AFTER_MS && !hinted) {
        hinted = true;
        console.log(`${o.pipeline}: ${noWorkerHint(o)}`);
      }
      if (!p || Date.now() - lastPrinted < every) return;
      lastPrinted = Date.now();
      hinted = false;
      console.log(`${o.pipeline}: ${progressText(o.pipeline, p, o.rows)}`);
    },
    complete: () => undefined, // the summary line follows
    stop: () => undefined,
  };
}
