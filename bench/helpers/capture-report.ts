// The figures, detail and caveats of a capture-overhead run, from its samples.
import { MODE_LABEL, type CaptureMode } from './capture.js';
import { median, round } from './stats.js';
import type { BenchReport, DetailTable, Figure } from './types.js';

export interface Sample {
  mode: CaptureMode;
  round: number;
  /** tps, or ms for the bulk update. */
  value: number;
  /** Outbox keys the run left: the triggers' output, and proof they fired (or did not). */
  enqueued: number;
  /** Mean sessions seen waiting on the NOTIFY commit lock (single-row runs). */
  notifyLockWaiters?: number;
}

export interface CaptureMeasurement {
  settings: { duration: number; clients: number; rounds: number; rows: number };
  insert: Sample[];
  update: Sample[];
  bulk: Sample[];
  checkpointed: boolean;
  /** Kept in the results file as they are. */
  extra: Record<string, unknown>;
}

const med = (
  samples: readonly Sample[],
  mode: CaptureMode,
  of: (s: Sample) => number = (s) => s.value,
): number => median(samples.filter((s) => s.mode === mode).map(of));
/**
 * The median over rounds of each round's own ratio. A round's runs are minutes apart at most, so
 * load from outside that drifts over the benchmark cancels out of each ratio.
 */
function ratio(
  samples: readonly Sample[],
  mode: CaptureMode,
  base: CaptureMode = 'without',
): number {
  const perRound = samples
    .filter((s) => s.mode === mode)
    .map(
      (s) =>
        s.value /
        (samples.find((b) => b.mode === base && b.round === s.round)?.value ?? Number.NaN),
    );
  return median(perRound.filter(Number.isFinite));
}
const has = (samples: readonly Sample[], mode: CaptureMode): boolean =>
  samples.some((s) => s.mode === mode);

export function captureReport(m: CaptureMeasurement): BenchReport {
  const { settings: o } = m;
  const ratios = {
    insert: ratio(m.insert, 'with'),
    update: ratio(m.update, 'with'),
    bulk: ratio(m.bulk, 'with'),
  };
  const withoutNotify = has(m.insert, 'no-notify')
    ? { insert: ratio(m.insert, 'no-notify'), update: ratio(m.update, 'no-notify') }
    : undefined;
  const waiters = med(m.insert, 'with', (s) => s.notifyLockWaiters ?? 0);
  // onContentChange: clear against the default (keep), where it was measured.
  const clear = has(m.update, 'clear')
    ? {
        update: ratio(m.update, 'clear', 'with'),
        bulk: ratio(m.bulk, 'clear', 'with'),
        updateVsWithout: ratio(m.update, 'clear'),
        bulkVsWithout: ratio(m.bulk, 'clear'),
      }
    : undefined;
  return {
    settings: {
      pgbenchSecondsPerRun: o.duration,
      clients: o.clients,
      rounds: o.rounds,
      rows: o.rows,
      pipeline: 'examples/products.yaml',
    },
    figures: [
      ...tpsFigures('INSERT', m.insert, ratios.insert, withoutNotify?.insert),
      ...tpsFigures('UPDATE', m.update, ratios.update, withoutNotify?.update),
      {
        label: `bulk UPDATE of ${o.rows} rows, without triggers`,
        value: `${round(med(m.bulk, 'without'), 0)} ms`,
      },
      {
        label: `bulk UPDATE of ${o.rows} rows, with triggers`,
        value: `${round(med(m.bulk, 'with'), 0)} ms`,
      },
      {
        label: 'bulk UPDATE time, with / without',
        value: `${round(ratios.bulk, 2)}×`,
        aim: '≤ 1.3×',
        met: ratios.bulk <= 1.3,
      },
      ...(clear ? clearFigures(m, clear) : []),
      {
        label: `sessions waiting on the NOTIFY commit lock (of ${o.clients}, INSERT with triggers)`,
        value: String(round(waiters, 2)),
      },
    ],
    tables: [runsTable(m)],
    data: {
      insert: m.insert,
      update: m.update,
      bulk: m.bulk,
      ratios,
      withoutNotify,
      clear,
      checkpointed: m.checkpointed,
      ...m.extra,
    },
    notes: [
      `Throughputs and times are medians of ${o.rounds} runs per mode; ratios are the median of the ${o.rounds} rounds’ own ratios (each round runs every mode once, in an order that rotates), which cancels load that drifts over the run. Before every run the outbox is emptied, the table vacuumed${m.checkpointed ? ' and a checkpoint taken' : ' (no CHECKPOINT: not a superuser)'}.`,
      '"Without triggers" means the capture triggers dropped, not disabled: PostgreSQL still collects transition tables for a disabled trigger.',
      `pgbench: ${o.clients} clients, prepared statements, one single-row statement per transaction, ${o.duration} s per run. The UPDATE changes an embedded column, so every one is captured.`,
      ...(withoutNotify
        ? [
            '"Minus NOTIFY" is a diagnostic: the pipeline’s own trigger functions with their pg_notify removed, to separate the cost of the cluster-wide lock NOTIFY holds through commit from the outbox insert’s.',
          ]
        : []),
      ...(clear
        ? [
            '"Clear" is the same pipeline with onContentChange: clear: its UPDATE capture also inserts one row per changed key into embedsync.stale_keys (decision 19). Its ratios are against the default (keep), per round.',
          ]
        : []),
      'No poller or worker runs: the outbox only grows during a run, as it would while they lag. What is measured is the cost inside the user’s transaction.',
    ],
  };
}

function tpsFigures(
  what: string,
  samples: readonly Sample[],
  r: number,
  noNotify: number | undefined,
): Figure[] {
  return [
    {
      label: `single-row ${what}, without triggers`,
      value: `${round(med(samples, 'without'), 0)} tps`,
    },
    { label: `single-row ${what}, with triggers`, value: `${round(med(samples, 'with'), 0)} tps` },
    {
      label: `single-row ${what}, with / without`,
      value: `${round(r * 100, 1)} %`,
      aim: '≥ 90 %',
      met: r >= 0.9,
    },
    ...(noNotify === undefined
      ? []
      : [
          {
            label: `diagnostic: single-row ${what}, triggers minus NOTIFY / without`,
            value: `${round(noNotify * 100, 1)} %`,
          },
        ]),
  ];
}

function clearFigures(
  m: CaptureMeasurement,
  r: { update: number; bulk: number; updateVsWithout: number; bulkVsWithout: number },
): Figure[] {
  return [
    {
      label: 'single-row UPDATE, onContentChange: clear',
      value: `${round(med(m.update, 'clear'), 0)} tps`,
    },
    { label: 'single-row UPDATE, clear / keep', value: `${round(r.update * 100, 1)} %` },
    {
      label: 'single-row UPDATE, clear / without triggers',
      value: `${round(r.updateVsWithout * 100, 1)} %`,
    },
    {
      label: `bulk UPDATE of ${m.settings.rows} rows, onContentChange: clear`,
      value: `${round(med(m.bulk, 'clear'), 0)} ms`,
    },
    { label: 'bulk UPDATE time, clear / keep', value: `${round(r.bulk, 2)}×` },
    { label: 'bulk UPDATE time, clear / without triggers', value: `${round(r.bulkVsWithout, 2)}×` },
  ];
}

function runsTable(m: CaptureMeasurement): DetailTable {
  const workloads = [
    ['INSERT', m.insert, 'tps'],
    ['UPDATE', m.update, 'tps'],
    ['bulk UPDATE', m.bulk, 'ms'],
  ] as const;
  const rows = workloads.flatMap(([what, samples, unit]) =>
    samples.map((s) => [
      what,
      MODE_LABEL[s.mode],
      String(s.round),
      `${round(s.value, 0)} ${unit}`,
      String(s.enqueued),
      s.notifyLockWaiters === undefined ? '' : String(s.notifyLockWaiters),
    ]),
  );
  return {
    title: 'Every run, in the order run',
    columns: [
      'workload',
      'triggers',
      'round',
      'result',
      'outbox keys after',
      'NOTIFY-lock waiters',
    ],
    rows,
  };
}
