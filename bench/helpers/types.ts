// What a benchmark is, what it is given, and what it hands back for the results files.
import type { BenchDatabase } from './database.js';

export interface BenchOptions {
  /** Seconds of load: the whole sync-latency run, or each pgbench run of capture-overhead. */
  duration?: number;
  /** Rows per second offered by sync-latency. */
  rate?: number;
  /** Concurrent connections of each pgbench run. */
  clients?: number;
  /** Repetitions of each capture-overhead measurement (the median is reported). */
  rounds?: number;
  /** Rows of the bulk UPDATE. */
  rows?: number;
}

export interface BenchContext {
  /** A fresh database, migrated, with an empty public.products; dropped after the run. */
  db: BenchDatabase;
  /** The same server's maintenance database, for a benchmark that needs a second database. */
  adminDatabaseUrl: string;
  temporal: { address: string; namespace: string };
  options: BenchOptions;
  log(line: string): void;
}

/** One line of the summary table. */
export interface Figure {
  label: string;
  value: string;
  /** The target from the issue, for comparison only; benchmarks never fail on it. */
  aim?: string;
  met?: boolean;
}

/** A table of detail beside the figures (e.g. where the time went). */
export interface DetailTable {
  title: string;
  columns: string[];
  rows: string[][];
}

export interface BenchReport {
  /** The settings the run actually used (defaults filled in). */
  settings: Record<string, number | string>;
  figures: Figure[];
  tables?: DetailTable[];
  /** Everything measured, for the results file. */
  data: Record<string, unknown>;
  /** Caveats a reader of the figures needs. */
  notes: string[];
}

export interface Benchmark {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<BenchReport>;
}
