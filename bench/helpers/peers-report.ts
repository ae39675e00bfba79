// The `peers` benchmark's report: medians over the rounds, a side-by-side table like the issue's,
// the aims, and what a reader needs to trust the comparison.
import { round } from './stats.js';
import {
  DIMENSIONS,
  MOCK_LATENCY_MS,
  MODEL,
  TOKENS_PER_MINUTE,
  type BackfillMeasure,
  type LiveMeasure,
  type SystemName,
} from './peer-common.js';
import { PGAI_VERSION } from './pgai.js';
import type { BenchReport, Figure } from './types.js';

export interface PeerSettings {
  rows: number;
  rounds: number;
  workers: number;
  pgaiConcurrency: number;
  rate: number;
  duration: number;
  metadataRows: number;
  parts: string[];
}

const AIMS = { backfillRatio: 3, latencyP50Ms: 100 };

const settingsOf = (s: PeerSettings): Record<string, number | string> => ({
  rows: s.rows,
  rounds: s.rounds,
  parts: s.parts.join(', '),
  'embedsync workers (second pair)': s.workers,
  'pgai concurrency (second pair)': s.pgaiConcurrency,
  'latency load': `${s.rate} inserts/s for ${s.duration} s`,
  provider: `mock OpenAI ${MODEL}, ${DIMENSIONS} dimensions, ${MOCK_LATENCY_MS} ms a request`,
  pgai: PGAI_VERSION,
});

export function skippedReport(settings: PeerSettings, missing: string): BenchReport {
  return {
    settings: settingsOf(settings),
    figures: [{ label: 'skipped', value: `pgai could not be installed: missing ${missing}` }],
    data: { skipped: true, missing },
    notes: ['Nothing was measured: pgai’s worker runs on Python, which this machine lacks.'],
  };
}

/**
 * The median of the rounds, halfway between the middle two for an even count: with two rounds,
 * stats.median's nearest rank would always report the lower one, flattering CPU and latency and
 * understating rows/s.
 */
function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? (v[mid] ?? Number.NaN) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
}

/** Median, and the range of the rounds when there were several. */
function spread(values: number[], digits = 0, unit = ''): string {
  const ok = values.filter(Number.isFinite);
  if (ok.length === 0) return '?';
  const f = (v: number): string => `${round(v, digits).toLocaleString('en-US')}${unit}`;
  const lo = Math.min(...ok);
  const hi = Math.max(...ok);
  return ok.length > 1 && lo !== hi ? `${f(median(ok))} (${f(lo)}–${f(hi)})` : f(median(ok));
}

const ratio = (a: number, b: number): string =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${round(a / b, 2)}×` : '?';

const per1000 = (seconds: number | undefined, rows: number): number =>
  seconds === undefined ? Number.NaN : (seconds * 1000) / rows;

function group(list: BackfillMeasure[], system: SystemName, setting: string): BackfillMeasure[] {
  return list.filter((m) => m.system === system && m.setting === setting);
}

export interface PeerMeasures {
  backfills: BackfillMeasure[];
  rateLimited: BackfillMeasure[];
  live: LiveMeasure[];
  postgresCpuReadable: boolean;
  /** 1-minute load averages when the benchmark started and ended. */
  load: { start: number; end: number; cpus: number };
  requirements: string[];
}

export function peersReport(s: PeerSettings, m: PeerMeasures): BenchReport {
  const pairs = [
    { es: '1 worker', pg: 'concurrency 1' },
    {
      es: `${s.workers} worker${s.workers === 1 ? '' : 's'}`,
      pg: `concurrency ${s.pgaiConcurrency}`,
    },
  ];
  const rows: string[][] = [];
  const figures: Figure[] = [];
  const backfillRates = (system: SystemName, setting: string): number[] =>
    group(m.backfills, system, setting).map((x) => x.rowsPerSecond);
  const cpu = (
    system: SystemName,
    setting: string,
    what: 'postgresCpuS' | 'workerCpuS',
  ): number[] => group(m.backfills, system, setting).map((x) => per1000(x.usage[what], x.rows));
  if (m.backfills.length > 0) {
    for (const p of pairs) {
      const es = backfillRates('embedsync', p.es);
      const pg = backfillRates('pgai', p.pg);
      rows.push([
        `backfill rows/s to the HNSW index, ${p.es} vs ${p.pg}`,
        spread(es),
        spread(pg),
        ratio(median(es), median(pg)),
      ]);
    }
    for (const [field, whose] of [
      ['postgresCpuS', 'PostgreSQL'],
      ['workerCpuS', 'worker'],
    ] as const) {
      for (const p of pairs) {
        const es = cpu('embedsync', p.es, field);
        const pg = cpu('pgai', p.pg, field);
        rows.push([
          `${whose} CPU per 1,000 rows, ${p.es} vs ${p.pg}`,
          spread(es, 2, ' s'),
          spread(pg, 2, ' s'),
          ratio(median(es), median(pg)),
        ]);
      }
    }
    const es = group(m.backfills, 'embedsync', pairs[1]?.es ?? '');
    const pg = group(m.backfills, 'pgai', pairs[1]?.pg ?? '');
    rows.push([
      'HNSW index (its time is in the rows/s above)',
      es.every((x) => x.indexDuringLoad)
        ? 'maintained during the load'
        : `left out during the load, built at its end in ${spread(
            es.map((x) => x.indexSeconds),
            1,
            ' s',
          )}`,
      `none kept; built after the load in ${spread(
        pg.map((x) => x.indexSeconds),
        1,
        ' s',
      )}`,
      '',
    ]);
    rows.push([
      `machine busy during the backfill, ${pairs[1]?.es} vs ${pairs[1]?.pg}`,
      spread(
        es.map((x) => x.usage.machineBusyPct ?? Number.NaN),
        0,
        ' %',
      ),
      spread(
        pg.map((x) => x.usage.machineBusyPct ?? Number.NaN),
        0,
        ' %',
      ),
      '',
    ]);
    const bestEs = Math.max(...pairs.map((p) => median(backfillRates('embedsync', p.es))));
    const bestPg = Math.max(...pairs.map((p) => median(backfillRates('pgai', p.pg))));
    figures.push({
      label: 'backfill rows/s, each at its best setting',
      value: `embedsync ${Math.round(bestEs)}, pgai ${Math.round(bestPg)}: ${ratio(bestEs, bestPg)}`,
      aim: `≥ ${AIMS.backfillRatio}× pgai`,
      met: bestEs >= AIMS.backfillRatio * bestPg,
    });
    const esCpu = median(cpu('embedsync', pairs[1]?.es ?? '', 'postgresCpuS'));
    const pgCpu = median(cpu('pgai', pairs[1]?.pg ?? '', 'postgresCpuS'));
    figures.push({
      label: `PostgreSQL CPU per 1,000 rows backfilled, ${pairs[1]?.es} vs ${pairs[1]?.pg}`,
      value: m.postgresCpuReadable
        ? `embedsync ${round(esCpu, 2)} s, pgai ${round(pgCpu, 2)} s: ${ratio(esCpu, pgCpu)}`
        : 'not readable (PostgreSQL is not a process of this machine)',
      aim: '≤ pgai’s',
      met: m.postgresCpuReadable ? esCpu <= pgCpu : undefined,
    });
  }
  if (m.rateLimited.length > 0) {
    const rl = (system: SystemName): BackfillMeasure[] =>
      m.rateLimited.filter((x) => x.system === system);
    const share = (list: BackfillMeasure[]): string => {
      const limited = list.reduce((a, x) => a + x.provider.rateLimited, 0);
      const all = list.reduce((a, x) => a + x.provider.requests, 0);
      return `${limited} of ${all} = ${round((limited / Math.max(1, all)) * 100, 1)} %`;
    };
    const es = rl('embedsync').map((x) => x.rowsPerSecond);
    const pg = rl('pgai').map((x) => x.rowsPerSecond);
    rows.push([
      `rate-limited backfill (${(TOKENS_PER_MINUTE / 1e6).toLocaleString('en-US')}M tokens/min), rows/s`,
      spread(es),
      spread(pg),
      ratio(median(es), median(pg)),
    ]);
    rows.push([
      'rate-limited: requests answered 429',
      share(rl('embedsync')),
      share(rl('pgai')),
      '',
    ]);
  }
  const live = (system: SystemName): LiveMeasure[] => m.live.filter((x) => x.system === system);
  if (m.live.length > 0 && s.parts.includes('latency')) {
    const cell = (list: LiveMeasure[]): string =>
      `${spread(list.map((x) => x.latencyMs.p50))} / ${spread(list.map((x) => x.latencyMs.p99))} ms${list.some((x) => x.unseen > 0) ? ` (${list.reduce((a, x) => a + x.unseen, 0)} unseen)` : ''}`;
    rows.push([
      `commit → vector p50 / p99 at ${s.rate} rows/s (pgai polling every 1 s)`,
      cell(live('embedsync')),
      cell(live('pgai')),
      ratio(
        median(live('embedsync').map((x) => x.latencyMs.p50)),
        median(live('pgai').map((x) => x.latencyMs.p50)),
      ),
    ]);
    const p50 = median(live('embedsync').map((x) => x.latencyMs.p50));
    figures.push({
      label: `commit → vector p50 at ${s.rate} rows/s`,
      value: `embedsync ${Math.round(p50)} ms, pgai ${Math.round(median(live('pgai').map((x) => x.latencyMs.p50)))} ms`,
      aim: `≤ ${AIMS.latencyP50Ms} ms`,
      met: p50 <= AIMS.latencyP50Ms,
    });
  }
  if (m.live.length > 0 && s.parts.includes('metadata')) {
    const cell = (list: LiveMeasure[]): string =>
      `${spread(list.map((x) => x.metadata.requests))} requests, ${spread(list.map((x) => x.metadata.inputs))} inputs${list.every((x) => x.metadata.done) ? '' : ' (not all applied within 60 s)'}`;
    rows.push([
      `price (metadata) change on ${s.metadataRows.toLocaleString('en-US')} rows: sent to the provider`,
      cell(live('embedsync')),
      cell(live('pgai')),
      '',
    ]);
  }
  figures.push({
    label: 'machine load (1-minute average), start → end',
    value: `${round(m.load.start, 2)} → ${round(m.load.end, 2)} on ${m.load.cpus} CPUs`,
  });
  return {
    settings: settingsOf(s),
    figures,
    tables: [
      { title: 'Side by side', columns: ['figure', 'embedsync', 'pgai', 'embedsync ÷ pgai'], rows },
    ],
    data: {
      backfills: rounded(m.backfills),
      rateLimited: rounded(m.rateLimited),
      live: rounded(m.live),
      load: m.load,
      pgaiRequirements: m.requirements,
    },
    notes: notes(s),
  };
}

/** The measurements with every number cut to 3 decimals, for the results file. */
function rounded<T>(value: T): T {
  return JSON.parse(
    JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' ? round(v, 3) : v)),
  ) as T;
}

function notes(s: PeerSettings): string[] {
  return [
    `Same PostgreSQL server, a database for each system, and the same mock provider in the benchmark's process (OpenAI's protocol, ${MOCK_LATENCY_MS} ms a request, no rate limit outside the rate-limited runs). Runs alternate embedsync, pgai, embedsync, pgai, …; values are medians over the ${s.rounds} round(s), with the range in brackets.`,
    `Each run has a fresh copy of a products-like table (${s.rows.toLocaleString('en-US')} rows, filled before anything watches it): "Product: <name>" and the description embedded as one text, category, price and in_stock beside it. pgai: ai.create_vectorizer with loading_column('description'), formatting_python_template('Product: $name\\n$chunk'), chunking_none(), indexing_none(), scheduling_none(), embedding_openai(base_url at the mock).`,
    'Backfill time, compared like with like, runs until every row has its vector and an HNSW cosine index (pgvector’s defaults) exists on the vectors. embedsync: from the backfill’s start request to its workflow’s completion, then until the vector table’s HNSW index exists (it keeps one; the row says whether it was already there). pgai: from ai.create_vectorizer (which queues every row) until its queue is empty — its worker, already running, polls every second while idle, so up to a second of that is waiting — then `create index … using hnsw`, which pgai without TimescaleDB never builds, with the settings embedsync’s worker gives its own build: maintenance_work_mem sized to the table within the same EMBEDSYNC_INDEX_BUILD_MEMORY, and the server’s parallel maintenance workers (each table’s parallel_workers set for the build, as the vectors are stored out of line); only embedsync’s CONCURRENTLY differs.',
    'PostgreSQL CPU: user + system time of every server process, read from /proc (the postmaster, its live children, and the children it reaped during the run), so it counts everything that used the server, the benchmark’s own probes included (pgai’s queue every 200 ms, embedsync’s index once): the benchmark must run alone on the machine for it to be the systems’ own. Worker CPU: the embedsync worker process(es) or pgai’s worker process; the Temporal server embedsync also needs is not in it (it is in the machine’s busy share).',
    `Rate-limited runs: ${Math.round(s.rows / 2).toLocaleString('en-US')} rows with the mock limited to ${TOKENS_PER_MINUTE.toLocaleString('en-US')} tokens/min (429 with retry-after beyond it), its budget spent before each run so both start at its steady rate; embedsync's pipeline declares that budget, pgai has no such setting and relies on its OpenAI client's retries. embedsync ${s.workers} worker(s), pgai concurrency ${s.pgaiConcurrency}.`,
    `Latency and metadata: a ${s.metadataRows.toLocaleString('en-US')}-row table embedded first; 10 warm-up inserts, then ${s.rate} single-row inserts/s for ${s.duration} s, each timed from its commit to a watcher first reading its vector (every ~5 ms). embedsync: one worker and one poller with their defaults; pgai: concurrency 1, --poll-interval 1 (its default is 5 minutes). Then one UPDATE of price on ${s.metadataRows.toLocaleString('en-US')} rows, with the provider requests and inputs counted by the mock: embedsync keeps price as metadata (done when every vector row shows the new price); pgai queues every changed row (done when its queue is empty).`,
    `pgai ${PGAI_VERSION} comes from PyPI into a virtual environment under EMBEDSYNC_HOME, installed once: pgai and its vectorizer-worker extra less docling and pymupdf4llm (document parsers that pull in torch); TIKTOKEN_CACHE_DIR points at the tokenizer files it ships, as it cannot download them offline.`,
  ];
}
