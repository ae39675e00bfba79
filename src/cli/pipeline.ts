// npm run apply / remove / pipelines: declare pipelines from a file, take them away, list them.
import { Command } from 'commander';
import { applyPipelines, removePipeline } from '../capture/apply.js';
import { loadPipelineFile } from '../config/load.js';
import { listPipelines } from '../db/catalog.js';
import { migrate } from '../db/migrator.js';
import { createPool, type Pool } from '../db/pool.js';
import { databaseUrl, runMain, UserError } from './common.js';
import type { Env } from '../config/env.js';

async function withPool(env: Env, fn: (pool: Pool) => Promise<void>): Promise<void> {
  const pool = createPool(databaseUrl(env), { max: 2 });
  try {
    await migrate(pool);
    await fn(pool);
  } finally {
    await pool.end();
  }
}

const program = new Command('embedsync-pipeline').description('Manage pipelines: a source table, an embedding config and a vector table.');

program
  .command('apply')
  .description('Validate a pipeline file (YAML or JSON) and install every pipeline in it, all or nothing.')
  .option('-c, --config <file>', 'the pipeline file (default: $EMBEDSYNC_CONFIG, else embedsync.yaml)')
  .addHelpText('after', '\nExample:\n  npm run apply -- --config examples/products.yaml')
  .action((opts: { config?: string }) =>
    runMain(async (env) => {
      const file = opts.config ?? env.configPath ?? 'embedsync.yaml';
      const configs = await loadPipelineFile(file);
      await withPool(env, async (pool) => {
        for (const r of await applyPipelines(pool, configs)) {
          console.log(`${r.pipeline}: ${r.outcome} (vectors in ${r.vectorTable})`);
          if (r.outcome === 'reembed pending') {
            console.log(`  what is embedded changed; the live vectors stay as they are until: npm run reembed -- --table ${r.pipeline}`);
          }
          if (r.heldBecause) console.log(`  still held, its changes waiting in the outbox: ${r.heldBecause}`);
        }
      });
    }),
  );

program
  .command('remove')
  .description('Remove a pipeline: its triggers, its queued changes and its catalog row. The vector table stays unless asked.')
  .requiredOption('-p, --pipeline <name>', 'the pipeline to remove')
  .option('--drop-vector-table', 'also drop the vector table and its view')
  .action((opts: { pipeline: string; dropVectorTable?: boolean }) =>
    runMain(async (env) => {
      await withPool(env, async (pool) => {
        const p = await removePipeline(pool, opts.pipeline, { dropVectorTable: opts.dropVectorTable ?? false });
        const kept = opts.dropVectorTable ? 'dropped' : 'kept';
        console.log(`${p.name}: removed (triggers on ${p.sourceSchema}.${p.sourceTable} dropped; ${p.vectorSchema}.${p.vectorTable} ${kept})`);
      });
    }),
  );

program
  .command('list')
  .description('List the pipelines in the catalog.')
  .action(() =>
    runMain(async (env) => {
      await withPool(env, async (pool) => {
        const pipelines = await listPipelines(pool);
        if (pipelines.length === 0) throw new UserError('no pipelines yet: apply a pipeline file with `npm run apply -- --config <file>`');
        for (const p of pipelines) {
          const e = p.config.embedding;
          console.log(`${p.name}\t${p.sourceSchema}.${p.sourceTable} → ${p.vectorSchema}.${p.vectorTable}\t${e.provider}/${e.model} ${e.dimensions}d\tgeneration ${p.generation}${p.syncPaused ? '\tsync paused' : ''}`);
        }
      });
    }),
  );

program.parse();
