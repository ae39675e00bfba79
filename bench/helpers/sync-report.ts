// The figures, detail and caveats of a sync-latency run, from what it measured.
import os from 'node:os';
import type { Breakdown } from './breakdown.js';
import type { CpuUse } from './cpu.js';
import type { Leftover, WorkerSession } from './leftovers.js';
import type { OpenLoopResult } from './load.js';
import { distribution, round, roundAll } from './stats.js';
import type { BenchReport } from './types.js';
import type { Sighting } from './watcher.js';

export interface SyncMeasurement {
  rate: number;
  duration: number;
  separatePoller: boolean;
  warmupRows: number;
  drainTimeoutMs: number;
  load: OpenLoopResult;
  sightings: Sighting[];
  unseen: number;
  leftovers: Leftover[];
  /** The worker's database sessions at the end of the drain, when rows were missing. */
  sessions: WorkerSession[];
  breakdown: Breakdown;
  cpu: CpuUse | undefined;
  meanPollMs: number;
}

export function syncLatencyReport(m: SyncMeasurement): BenchReport {
  const latency = roundAll(distribution(m.sightings.map((s) => s.visibleAt - s.committedAt)));
  const achieved = round(m.load.completed / ((m.load.finishedAt - m.load.startedAt) / 1000), 1);
  const unseen = m.unseen
    ? ` (${m.unseen} not seen within ${m.drainTimeoutMs / 1000} s; ${m.leftovers.length} sync workflows still running)`
    : '';
  const cpu = m.cpu;
  return {
    settings: {
      duration: m.duration,
      rate: m.rate,
      services: m.separatePoller
        ? 'worker and poller as child processes (src/cli/worker.ts, src/cli/poller.ts), default options'
        : 'a worker with its poller beside it as a child process (src/cli/worker.ts --poller: eager workflow start), default options',
      pipeline: 'examples/products.yaml',
    },
    figures: [
      { label: 'rows committed / seen', value: `${m.load.completed} / ${latency.count}${unseen}` },
      { label: 'insert rate achieved', value: `${achieved} rows/s (offered ${m.rate})` },
      {
        label: 'latency p50',
        value: `${latency.p50} ms`,
        aim: '≤ 100 ms',
        met: latency.p50 <= 100,
      },
      { label: 'latency p90', value: `${latency.p90} ms` },
      {
        label: 'latency p99',
        value: `${latency.p99} ms`,
        aim: '≤ 300 ms',
        met: latency.p99 <= 300,
      },
      { label: 'latency max', value: `${latency.max} ms` },
      {
        label: 'sync workflows (keys each, mean)',
        value: `${m.breakdown.workflows} (${m.breakdown.keysPerWorkflow.mean})`,
      },
      {
        label: 'task timeouts in the sampled histories',
        value: `${m.breakdown.timeouts.workflowTask} workflow task, ${m.breakdown.timeouts.activity} activity (of ${m.breakdown.sampled} workflows)`,
      },
      ...(cpu
        ? [
            {
              label: 'machine CPU busy during the load',
              value: `${cpu.machineBusyPct} % of ${os.cpus().length} cores (worker ${cpu.processPctOfCore.worker ?? '?'} % of a core)`,
            },
          ]
        : []),
    ],
    tables: [
      {
        title: `Where the time goes (${m.breakdown.sampled} of ${m.breakdown.workflows} sync workflows sampled; ms per key)`,
        columns: ['segment', 'p50', 'p90', 'max'],
        rows: m.breakdown.segments.map((s) => [
          s.segment,
          String(s.ms.p50),
          String(s.ms.p90),
          String(s.ms.max),
        ]),
      },
    ],
    data: {
      latencyMs: latency,
      load: { ...m.load, achievedRatePerS: achieved },
      unseen: m.unseen,
      leftovers: m.leftovers,
      workerSessionsWhileRowsMissing: m.sessions,
      watcher: { intervalMs: 5, meanPollMs: round(m.meanPollMs, 2) },
      breakdown: m.breakdown,
      cpu,
    },
    notes: [
      'Latency is measured on the client: from the moment the INSERT (its own transaction) returned to the moment a poll of the vector table, every ~5 ms on a separate connection, first returned the row. Resolution ≈ 5 ms + one poll.',
      `The first ${m.warmupRows} rows (worker warm-up) are not counted.`,
      'The breakdown comes from the sync workflows’ histories (Temporal’s event times), set against each key’s commit and sighting. Stages run as activities on the task queues: a gap between stages is a workflow task plus the next activity’s dispatch. Stages run as local activities (one workflow task): each is timed from its marker’s schedule time to the next stage’s, which includes the worker’s own step between them.',
      'A task timeout is a workflow task or activity the worker was handed but did not complete: it is retried only when its timeout fires (workflow task 10 s, which also covers the stages a sync runs as local activities; activities on the task queues 15–30 s heartbeat), so each one puts a row seconds into the tail.',
      'The load generator, the watcher, the worker, the poller, PostgreSQL and Temporal all share this machine.',
    ],
  };
}
