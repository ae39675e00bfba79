// npx embedsync reindex: rebuilds a pipeline's HNSW index concurrently (src/capture/reindex.ts), so
// an index worn by churn is made compact again while reads and writes go on.
import { Command } from 'commander';
import { reindexPipeline } from '../capture/reindex.js';
import { UpkeepError } from '../capture/upkeep-error.js';
import { resolvePipeline } from '../db/catalog.js';
import { runMain, UserError } from './common.js';
import { openDatabase } from './connections.js';

const opts = new Command('embedsync reindex')
  .usage('--table <pipeline> [--json]')
  .description(
    "Rebuild a pipeline's HNSW index with REINDEX INDEX CONCURRENTLY: searches and writes go on while it runs. " +
      'An index left invalid by a failed build is dropped and built again; a missing one is built.',
  )
  .requiredOption('-t, --table <pipeline>', 'a pipeline name, or a source table one pipeline syncs')
  .option('--json', 'print the result as JSON')
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync reindex --table products
  npm run reindex -- --table products --json

The index is the vector table's <table>_hnsw, or for a pipeline writing into a column of the source
table (destination.column) the column's index (destination.index: true). The build takes
maintenance_work_mem as a backfill's does (EMBEDSYNC_INDEX_BUILD_MEMORY, 1 GB unless set) and needs
disk for a second copy of the index while it runs. Sizes are pg_relation_size before and after.
To run it on a schedule, set upkeep.reindexEvery in the pipeline file and apply it.`,
  )
  .parse()
  .opts<{ table: string; json?: boolean }>();

const mb = (bytes: number): string =>
  bytes < 2 ** 20 ? `${Math.round(bytes / 1024)} kB` : `${(bytes / 2 ** 20).toFixed(1)} MB`;

runMain(async (env) => {
  const pool = await openDatabase(env, 'embedsync-reindex');
  try {
    const p = await resolvePipeline(pool, opts.table);
    const r = await reindexPipeline(pool, p, env.indexBuildMemory).catch((err: unknown) => {
      throw err instanceof UpkeepError ? new UserError(err.message) : err;
    });
    if (opts.json) {
      console.log(JSON.stringify(r, null, 2));
      return;
    }
    const change =
      r.bytesBefore > 0
        ? ` (${r.bytesAfter <= r.bytesBefore ? '' : '+'}${Math.round(((r.bytesAfter - r.bytesBefore) / r.bytesBefore) * 100)}%)`
        : '';
    console.log(
      `${r.pipeline}: ${r.index} ${r.action}: ${mb(r.bytesBefore)} → ${mb(r.bytesAfter)}${change}`,
    );
  } finally {
    await pool.end();
  }
});
