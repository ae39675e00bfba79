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
  /** Logical capture: WAL the reader was behind when the writes ended, and its catch-up time. */
  lagBytes?: number;
  catchUpMs?: number;
  /** Logical capture: the walsender's and the reading process's CPU, in % of one core. */
  walsenderPct?: number;
  readerPct?: number;
}

export interface CaptureMeasurement {
  settings: { duration: number; clients: number; rounds: number; rows: number };
  insert: Sample[];
  update: Sample[];
  bulk: Sample[];
  checkpointed: boolean;
  walLevel: string;
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
  const logical = has(m.insert, 'logical');
  const ratios = {
    insert: ratio(m.insert, 'with'),
    update: ratio(m.update, 'with'),
    bulk: ratio(m.bulk, 'with'),
  };
  const logicalRatios = logical
    ? {
        insert: ratio(m.insert, 'logical'),
        update: ratio(m.update, 'logical'),
        bulk: ratio(m.bulk, 'logical'),
      }
    : undefined;
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
  // The aims are the capture's: logical capture's where it was measured, the triggers' otherwise.
  const aimed = logical ? 'logical' : 'with';
  return {
    settings: {
      pgbenchSecondsPerRun: o.duration,
      clients: o.clients,
      rounds: o.rounds,
      rows: o.rows,
      pipeline: 'examples/products.yaml',
      walLevel: m.walLevel,
    },
    figures: [
      ...tpsFigures('INSERT', m.insert, 'with', ratios.insert, aimed === 'with'),
      ...tpsFigures('UPDATE', m.update, 'with', ratios.update, aimed === 'with'),
      ...(withoutNotify
        ? [
            {
              label: 'diagnostic: single-row INSERT, triggers minus NOTIFY / without',
              value: `${round(withoutNotify.insert * 100, 1)} %`,
            },
            {
              label: 'diagnostic: single-row UPDATE, triggers minus NOTIFY / without',
              value: `${round(withoutNotify.update * 100, 1)} %`,
            },
          ]
        : []),
      {
        label: `bulk UPDATE of ${o.rows} rows, without capture`,
        value: `${round(med(m.bulk, 'without'), 0)} ms`,
      },
      ...bulkFigures(m, 'with', ratios.bulk, aimed === 'with'),
      ...(logicalRatios
        ? [
            ...tpsFigures('INSERT', m.insert, 'logical', logicalRatios.insert, true),
            ...tpsFigures('UPDATE', m.update, 'logical', logicalRatios.update, true),
            ...bulkFigures(m, 'logical', logicalRatios.bulk, true),
            ...lagFigures(m),
            ...(has(m.insert, 'logical-unread')
              ? [
                  {
                    label:
                      'diagnostic: single-row INSERT, logical capture with the reader stopped / without',
                    value: `${round(ratio(m.insert, 'logical-unread') * 100, 1)} %`,
                  },
                  {
                    label:
                      'diagnostic: single-row UPDATE, logical capture with the reader stopped / without',
                    value: `${round(ratio(m.update, 'logical-unread') * 100, 1)} %`,
                  },
                ]
              : []),
            ...readingFigures(m),
          ]
        : []),
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
      logicalRatios,
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
      `The server runs with wal_level = ${m.walLevel} in every mode (it is a server setting: the runs without capture pay for it too).`,
      ...(logical
        ? [
            '"Reader stopped" is a diagnostic: the table in the publication and no triggers, with no reader during the run (the slot is moved past the run before the next), which separates what reading the WAL costs — the walsender\'s decoding and the reader\'s process, on the same cores as pgbench here — from what publishing the table does.',
            '"Logical capture" is decision 29: no triggers, the table in the publication embedsync_capture, and the WAL reader (src/poller/wal-reader.ts) running in the benchmark\'s process during the writes, as the poller\'s loop runs it: decoding on the server and the outbox inserts it makes are inside the measurement. Its lag is the WAL it was behind when the writes ended, and the time it then took to read the rest. Before every run the slot is moved to the end of the WAL, so no run decodes the one before it.',
          ]
        : []),
    ],
  };
}

const CAPTURE_WORDS: Partial<Record<CaptureMode, string>> = {
  with: 'with triggers',
  logical: 'with logical capture',
};

function tpsFigures(
  what: string,
  samples: readonly Sample[],
  mode: CaptureMode,
  r: number,
  aim: boolean,
): Figure[] {
  const words = CAPTURE_WORDS[mode] ?? MODE_LABEL[mode];
  return [
    ...(mode === 'with'
      ? [
          {
            label: `single-row ${what}, without capture`,
            value: `${round(med(samples, 'without'), 0)} tps`,
          },
        ]
      : []),
    { label: `single-row ${what}, ${words}`, value: `${round(med(samples, mode), 0)} tps` },
    {
      label: `single-row ${what}, ${words} / without`,
      value: `${round(r * 100, 1)} %`,
      ...(aim ? { aim: '≥ 90 %', met: r >= 0.9 } : {}),
    },
  ];
}

function bulkFigures(m: CaptureMeasurement, mode: CaptureMode, r: number, aim: boolean): Figure[] {
  const words = CAPTURE_WORDS[mode] ?? MODE_LABEL[mode];
  return [
    {
      label: `bulk UPDATE of ${m.settings.rows} rows, ${words}`,
      value: `${round(med(m.bulk, mode), 0)} ms`,
    },
    {
      label: `bulk UPDATE time, ${words} / without`,
      value: `${round(r, 2)}×`,
      ...(aim ? { aim: '≤ 1.3×', met: r <= 1.3 } : {}),
    },
  ];
}

/** How far behind the reader was when the writes ended, and how long it took to read the rest. */
function lagFigures(m: CaptureMeasurement): Figure[] {
  const kib = (samples: readonly Sample[]) =>
    `${round(med(samples, 'logical', (s) => s.lagBytes ?? 0) / 1024, 0)} KiB, caught up in ${round(
      med(samples, 'logical', (s) => s.catchUpMs ?? 0),
      0,
    )} ms`;
  return [
    { label: 'logical capture: reader behind at the end of an INSERT run', value: kib(m.insert) },
    { label: 'logical capture: reader behind at the end of an UPDATE run', value: kib(m.update) },
    { label: 'logical capture: reader behind after the bulk UPDATE', value: kib(m.bulk) },
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
      s.lagBytes === undefined
        ? ''
        : `${round(s.lagBytes / 1024, 0)} KiB / ${round(s.catchUpMs ?? 0, 0)} ms`,
    ]),
  );
  return {
    title: 'Every run, in the order run',
    columns: [
      'workload',
      'capture',
      'round',
      'result',
      'outbox keys after',
      'NOTIFY-lock waiters',
      'reader behind / catch-up',
    ],
    rows,
  };
}

/**
 * What reading the WAL costs whoever reads it: single-row writes with PostgreSQL's own
 * pg_recvlogical reading the slot instead of embedsync's reader, and each side's CPU.
 */
function readingFigures(m: CaptureMeasurement): Figure[] {
  if (!has(m.insert, 'logical-pg')) return [];
  const cpu = (samples: readonly Sample[], mode: CaptureMode) =>
    `walsender ${round(
      med(samples, mode, (s) => s.walsenderPct ?? 0),
      0,
    )} %, reader ${round(
      med(samples, mode, (s) => s.readerPct ?? 0),
      0,
    )} % of a core`;
  const figures: Figure[] = [];
  for (const [what, samples] of [
    ['INSERT', m.insert],
    ['UPDATE', m.update],
  ] as const) {
    figures.push(
      {
        label: `diagnostic: single-row ${what}, logical capture read by pg_recvlogical / without`,
        value: `${round(ratio(samples, 'logical-pg') * 100, 1)} %`,
      },
      {
        label: `logical capture: CPU while single-row ${what}s ran`,
        value: cpu(samples, 'logical'),
      },
      {
        label: `pg_recvlogical: CPU while single-row ${what}s ran`,
        value: cpu(samples, 'logical-pg'),
      },
    );
  }
  return figures;
}
