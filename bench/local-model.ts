// Local model: how many texts a second the local provider embeds in the worker's process, at one
// and at two threads, and the memory it takes. The texts are the demo's product rows (a name and a
// sentence or two, ~30 tokens), in requests of 32, the provider's batch size. The model is fetched
// first if it is not in EMBEDSYNC_LOCAL_MODELS.
import os from 'node:os';
import { readProviderEnv } from '../src/config/env.js';
import { demoProducts } from '../src/demo/products.js';
import { fetchLocalModel } from '../src/providers/local-fetch.js';
import { DEFAULT_LOCAL_MODEL, findLocalModel } from '../src/providers/local-models.js';
import { LocalProvider } from '../src/providers/local.js';
import { round } from './helpers/stats.js';
import type { BenchContext, BenchReport, Benchmark } from './helpers/types.js';

const DEFAULTS = { rows: 3200, threads: [1, 2] };

export const localModelBench: Benchmark = {
  name: 'local-model',
  title: 'Local model: texts a second embedded in the worker process, at 1 and 2 threads',
  run,
};

interface Run {
  threads: number;
  texts: number;
  loadS: number;
  seconds: number;
  textsPerSecond: number;
  /** CPU seconds of the whole process per second of wall time while embedding. */
  cores: number;
  /**
   * Texts per CPU second: what one core does when nothing else wants it. Unlike texts/s it hardly
   * moves with the machine's other work.
   */
  textsPerCpuSecond: number;
  rssMB: number;
  /** The machine's 1-minute load average when the run ended: what else competed for its cores. */
  loadAverage: number;
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const rows = ctx.options.rows ?? DEFAULTS.rows;
  const model = findLocalModel(DEFAULT_LOCAL_MODEL);
  if (!model) throw new Error(`no local model ${DEFAULT_LOCAL_MODEL}`);
  const { modelsDir } = readProviderEnv().local;
  await fetchLocalModel(modelsDir, model, (line) => ctx.log(line));
  const embedding = { provider: 'local' as const, model: model.name, dimensions: model.dimensions };
  const texts = demoProducts(rows).map((p) => `Product: ${p.name}\n${p.description}`);
  const batches = Array.from({ length: Math.ceil(texts.length / 32) }, (_, i) =>
    texts.slice(i * 32, i * 32 + 32),
  );
  const runs: Run[] = [];
  for (const threads of DEFAULTS.threads) {
    const provider = new LocalProvider({ modelsDir, threads });
    try {
      const loadStarted = performance.now();
      await provider.warm(embedding);
      const loadS = (performance.now() - loadStarted) / 1000;
      const embed = (batch: string[]) =>
        provider.embed({
          model: model.name,
          dimensions: model.dimensions,
          inputType: 'document',
          texts: batch,
          embedding,
        });
      await embed(batches[0] ?? []); // the first inference allocates; not counted
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (const batch of batches) await embed(batch);
      const seconds = (performance.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      const r: Run = {
        threads,
        texts: texts.length,
        loadS: round(loadS, 2),
        seconds: round(seconds, 2),
        textsPerSecond: Math.round(texts.length / seconds),
        cores: round((used.user + used.system) / 1e6 / seconds, 2),
        textsPerCpuSecond: Math.round(texts.length / ((used.user + used.system) / 1e6)),
        rssMB: Math.round(process.memoryUsage().rss / 1_048_576),
        loadAverage: round(os.loadavg()[0] ?? 0, 1),
      };
      ctx.log(
        `${threads} thread(s): ${r.textsPerSecond} texts/s, ${r.cores} cores busy, ${r.textsPerCpuSecond} texts per CPU second, RSS ${r.rssMB} MB (load ${r.loadS} s)`,
      );
      runs.push(r);
    } finally {
      await provider.close();
    }
  }
  return {
    settings: { model: model.name, texts: rows, batch: 32, threads: DEFAULTS.threads.join(',') },
    figures: runs
      .map((r) => ({
        label: `texts/s at ${r.threads} thread${r.threads > 1 ? 's' : ''} (EMBEDSYNC_LOCAL_THREADS=${r.threads})`,
        value: `${r.textsPerSecond} (${r.cores} cores busy, RSS ${r.rssMB} MB, load average ${r.loadAverage})`,
      }))
      .concat(
        runs.map((r) => ({
          label: `texts per CPU second at ${r.threads} thread${r.threads > 1 ? 's' : ''}`,
          value: String(r.textsPerCpuSecond),
        })),
      ),
    tables: [
      {
        title: 'Runs',
        columns: [
          'threads',
          'texts',
          'seconds',
          'texts/s',
          'cores busy',
          'texts/CPU s',
          'RSS MB',
          'load s',
          'load average',
        ],
        rows: runs.map((r) => [
          String(r.threads),
          String(r.texts),
          String(r.seconds),
          String(r.textsPerSecond),
          String(r.cores),
          String(r.textsPerCpuSecond),
          String(r.rssMB),
          String(r.loadS),
          String(r.loadAverage),
        ]),
      },
    ],
    data: { runs },
    notes: [
      `${model.name} (int8, ${model.dimensions} dimensions), ${rows} demo product texts in requests of 32, one request at a time as the provider runs them.`,
      'RSS is the whole process (this benchmark, the model and its thread) after the run: what the model adds to a worker is most of it.',
      'On a shared machine the figures move with whatever else runs: "cores busy" is how much of the machine the model got, "load average" how much else wanted it.',
    ],
  };
}
