// The results files: one JSON per benchmark with everything measured, and a README that tabulates
// the figures of every results file present, each with the command that produced it.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineFacts } from './machine.js';
import type { BenchReport, DetailTable, Figure } from './types.js';

export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

export interface ResultFile extends BenchReport {
  benchmark: string;
  title: string;
  command: string;
  /** Which PostgreSQL and Temporal it ran against, in words (no addresses). */
  stack: string;
  durationS: number;
  machine: MachineFacts;
}

export async function writeResult(result: ResultFile): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${result.benchmark}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

/**
 * Rewrites results/README.md from every results file, so a partial run keeps the other benchmarks'
 * rows.
 */
export async function writeSummary(): Promise<string> {
  const files = (await readdir(RESULTS_DIR)).filter((f) => f.endsWith('.json')).sort();
  const results = await Promise.all(
    files.map(
      async (f) => JSON.parse(await readFile(path.join(RESULTS_DIR, f), 'utf8')) as ResultFile,
    ),
  );
  const lines = [
    '# Benchmark results',
    '',
    'Written by `npm run bench`; what each benchmark measures and how to read it is in [../README.md](../README.md).',
    'One run on one machine, shared with other work: treat differences of a few percent as noise.',
    '',
  ];
  for (const r of results) lines.push(...section(r), '');
  const file = path.join(RESULTS_DIR, 'README.md');
  await writeFile(file, `${lines.join('\n').trimEnd()}\n`);
  return file;
}

function section(r: ResultFile): string[] {
  const m = r.machine;
  const pgSettings = Object.entries(m.postgresSettings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return [
    `## ${r.title}`,
    '',
    `Command: \`${r.command}\` — ${m.date.slice(0, 16).replace('T', ' ')} UTC, ${Math.round(r.durationS)} s, against ${r.stack}`,
    '',
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, load ${m.loadAverage1m} at start; ${m.os}; Node ${m.node}; ` +
      `PostgreSQL ${m.postgres} (${pgSettings}); pgvector ${m.pgvector}; Temporal ${m.temporalServer}`,
    '',
    `Settings: ${Object.entries(r.settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('; ')}`,
    '',
    '| figure | value | aim |',
    '|---|---|---|',
    ...r.figures.map(row),
    '',
    ...(r.tables ?? []).flatMap(markdownTable),
    ...r.notes.map((n) => `- ${n}`),
  ];
}

const row = (f: Figure): string =>
  `| ${f.label} | ${f.value} | ${f.aim ? `${f.aim}${f.met === undefined ? '' : f.met ? ' (met)' : ' (not met)'}` : ''} |`;

function markdownTable(t: DetailTable): string[] {
  return [
    `${t.title}:`,
    '',
    `| ${t.columns.join(' | ')} |`,
    `|${t.columns.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ];
}

function textTable(t: DetailTable): string[] {
  const widths = t.columns.map((c, i) =>
    Math.max(c.length, ...t.rows.map((r) => (r[i] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    `    ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  return [`  ${t.title}:`, line(t.columns), ...t.rows.map(line)];
}

/** The figures (and detail tables) as plain text, for the end of a run. */
export function printable(r: Pick<ResultFile, 'title' | 'figures' | 'tables'>): string {
  const width = Math.max(...r.figures.map((f) => f.label.length));
  const aim = (f: Figure): string =>
    f.aim ? `   [aim ${f.aim}${f.met === undefined ? '' : f.met ? ', met' : ', not met'}]` : '';
  return [
    r.title,
    ...r.figures.map((f) => `  ${f.label.padEnd(width)}  ${f.value}${aim(f)}`),
    ...(r.tables ?? []).flatMap(textTable),
  ].join('\n');
}
