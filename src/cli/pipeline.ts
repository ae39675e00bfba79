// embedsync apply / remove / pipelines: declare pipelines from a file, take them away, list them.
import { Command } from 'commander';
import { applyPipelines, removePipeline } from '../capture/apply.js';
import { loadPipelineFile } from '../config/load.js';
import { isEventsPipeline, listAnyPipelines, resolveAnyPipeline } from '../db/catalog.js';
import { vectorsPlace } from '../db/destination.js';
import { migrate } from '../db/migrator.js';
import { createPool, type Pool } from '../db/pool.js';
import { databaseUrl, runMain, UserError } from './common.js';
import type { Env } from '../config/env.js';
import { isEventsOnly, type PipelineConfig } from '../config/pipeline.js';
import { describeSink } from '../sinks/payload.js';
import { deleteSchedules, syncSchedules, wantedSchedules } from '../temporal/schedules.js';
import { connectTemporal, TemporalUnreachableError, type TemporalSession } from './connections.js';

/**
 * Runs `fn` with a Temporal client, after the database part has committed. Unreachable: says what
 * was not done (the database part stays applied) and exits 1 when `needed`, else stays quiet.
 */
async function withTemporal(
  env: Env,
  needed: boolean,
  notDone: string,
  fn: (session: TemporalSession) => Promise<void>,
): Promise<void> {
  let session: TemporalSession;
  try {
    session = await connectTemporal(env);
  } catch (err) {
    if (!(err instanceof TemporalUnreachableError)) throw err;
    if (needed) {
      process.stderr.write(`embedsync: ${err.message}\n  ${notDone}\n`);
      process.exitCode = 1;
    }
    return;
  }
  try {
    await fn(session);
  } finally {
    await session.close();
  }
}

/** apply's second part: each pipeline's upkeep schedules made to match its config. */
async function applySchedules(env: Env, configs: PipelineConfig[]): Promise<void> {
  const wanted = configs.flatMap((c) => wantedSchedules(c).map((w) => w.id));
  await withTemporal(
    env,
    wanted.length > 0,
    `the pipelines are applied in the database, but their upkeep schedules (${wanted.join(', ')}) are not: apply again once Temporal is reachable`,
    async ({ client }) => {
      for (const c of await syncSchedules(client, env.taskQueue, configs))
        console.log(
          `  schedule ${c.id}: ${c.outcome}${c.paused ? ' (paused in Temporal; left paused)' : ''}`,
        );
    },
  );
}

async function withPool(env: Env, fn: (pool: Pool) => Promise<void>): Promise<void> {
  const pool = createPool(databaseUrl(env), { max: 2 });
  try {
    await migrate(pool);
    await fn(pool);
  } finally {
    await pool.end();
  }
}

const program = new Command('embedsync').description(
  'Manage pipelines: a source table, an embedding config and a vector table.',
);

program
  .command('apply')
  .usage('[--config <file>]')
  .description(
    'Validate a pipeline file (YAML or JSON) and install every pipeline in it, all or nothing.',
  )
  .option(
    '-c, --config <file>',
    'the pipeline file (default: $EMBEDSYNC_CONFIG, else embedsync.yaml)',
  )
  .option(
    '--no-probe',
    "don't ask an OpenAI-compatible server for the dimensions of a model embedsync does not know; take embedding.dimensions on trust",
  )
  .addHelpText(
    'after',
    `
A model embedsync does not know (served by vLLM, TEI, Ollama, …) needs a server: embedding.baseURL,
or OPENAI_BASE_URL in the environment. apply sends it one one-word request and refuses the
pipeline if the vectors have other dimensions than it declares, or if the server cannot be reached.

Example:
  npx embedsync apply --config examples/products.yaml
  OPENAI_BASE_URL=http://127.0.0.1:8080/v1 npx embedsync apply --config e5.yaml`,
  )
  .action((opts: { config?: string; probe: boolean }) =>
    runMain(async (env) => {
      const file = opts.config ?? env.configPath ?? 'embedsync.yaml';
      const configs = await loadPipelineFile(file);
      await withPool(env, async (pool) => {
        for (const r of await applyPipelines(pool, configs, opts.probe ? {} : { probe: false })) {
          const config = configs.find((c) => c.name === r.pipeline);
          const where =
            config && isEventsOnly(config)
              ? `events only, to ${config.sinks.map(describeSink).join(', ')}`
              : `vectors in ${r.vectors}`;
          console.log(`${r.pipeline}: ${r.outcome} (${where})`);
          if (r.outcome === 'reembed pending') {
            console.log(
              `  what is embedded changed; the live vectors stay as they are until: npx embedsync reembed --table ${r.pipeline}`,
            );
          }
          if (r.heldBecause)
            console.log(`  still held, its changes waiting in the outbox: ${r.heldBecause}`);
        }
      });
      await applySchedules(
        env,
        configs.filter((c) => !isEventsOnly(c)),
      );
    }),
  );

program
  .command('remove')
  .usage('--table <pipeline> [--drop-vector-table]')
  .description(
    'Remove a pipeline: its triggers, its queued changes and its catalog row. The vector table stays unless asked.',
  )
  .option(
    '-t, --table <pipeline>',
    'the pipeline to remove: its name, or a source table one pipeline syncs',
  )
  .option('-p, --pipeline <pipeline>', 'the same as --table')
  .option('--drop-vector-table', 'also drop the vector table and its view')
  .addHelpText('after', '\nExample:\n  npx embedsync remove --table products --drop-vector-table')
  .action(
    (opts: { table?: string; pipeline?: string; dropVectorTable?: boolean }, command: Command) => {
      if (opts.table !== undefined && opts.pipeline !== undefined && opts.table !== opts.pipeline) {
        command.error(
          `error: --table ${opts.table} and --pipeline ${opts.pipeline} name different pipelines; give one`,
        );
      }
      const table = opts.table ?? opts.pipeline;
      if (table === undefined)
        command.error("error: required option '--table <pipeline>' not specified");
      runMain(async (env) => {
        await withPool(env, async (pool) => {
          const name = (await resolveAnyPipeline(pool, table)).name;
          const p = await removePipeline(pool, name, {
            dropVectorTable: opts.dropVectorTable ?? false,
          });
          const kept = opts.dropVectorTable ? 'dropped' : 'kept';
          const vectors = isEventsPipeline(p) ? '' : `; ${p.vectorSchema}.${p.vectorTable} ${kept}`;
          console.log(
            `${p.name}: removed (triggers on ${p.sourceSchema}.${p.sourceTable} dropped${vectors})`,
          );
          const ids = isEventsPipeline(p) ? [] : wantedSchedules(p.config).map((w) => w.id);
          await withTemporal(
            env,
            ids.length > 0,
            `${p.name} is removed from the database, but its upkeep schedules are not; delete them in the Web UI or with: ` +
              ids.map((id) => `temporal schedule delete --schedule-id ${id}`).join('; '),
            async ({ client }) => {
              for (const id of await deleteSchedules(client, p.name))
                console.log(`  schedule ${id}: deleted`);
            },
          );
        });
      });
    },
  );

program
  .command('pipelines')
  .description('List the pipelines in the catalog.')
  .action(() =>
    runMain(async (env) => {
      await withPool(env, async (pool) => {
        const pipelines = await listAnyPipelines(pool);
        if (pipelines.length === 0) {
          throw new UserError(
            'no pipelines yet: apply a pipeline file with `npx embedsync apply --config <file>`',
          );
        }
        for (const p of pipelines) {
          if (isEventsPipeline(p)) {
            const sinks = p.config.sinks.map(describeSink).join(', ');
            console.log(
              `${p.name}\t${p.sourceSchema}.${p.sourceTable} → ${sinks}\tevents only${p.syncPaused ? '\tsync paused' : ''}`,
            );
            continue;
          }
          const e = p.config.embedding;
          console.log(
            `${p.name}\t${p.sourceSchema}.${p.sourceTable} → ${vectorsPlace(p)}\t${e.provider}/${e.model} ${e.dimensions}d\tgeneration ${p.generation}${p.syncPaused ? '\tsync paused' : ''}`,
          );
        }
      });
    }),
  );

program.parse();
