// npx embedsync redeliver --table <pipeline>: sends a pipeline's deliveries that a sink refused
// (embedsync.failed_deliveries) again now, instead of after their wait (decision 23).
import { Command } from 'commander';
import type { Env } from '../config/env.js';
import { resolveAnyPipeline } from '../db/catalog.js';
import { countFailedDeliveries } from '../db/deliveries.js';
import { redeliver } from '../sinks/redeliver.js';
import { runMain, UserError } from './common.js';
import { connectTemporal, openDatabase } from './connections.js';
import { plural } from './format.js';

const program = new Command('embedsync redeliver')
  .description(
    "Send a pipeline's refused deliveries (a webhook's 4xx, a missing secret) again now: each reads its rows' current state and keeps its delivery id. `status` shows how many there are.",
  )
  .requiredOption('-t, --table <pipeline>', 'a pipeline name, or a source table one pipeline syncs')
  .addHelpText('after', '\nExample:\n  npx embedsync redeliver --table products')
  .action((opts: { table: string }) => runMain((env) => run(env, opts.table)));

program.parse();

async function run(env: Env, table: string): Promise<void> {
  const pool = await openDatabase(env, 'embedsync-redeliver');
  try {
    const p = await resolveAnyPipeline(pool, table);
    const { count } = await countFailedDeliveries(pool, p.name);
    if (count === 0) {
      console.log(`${p.name} has no refused deliveries.`);
      return;
    }
    // Only a workflow sink needs Temporal; a webhook's delivery goes without it.
    const temporal = await connectTemporal(env).catch(() => undefined);
    try {
      let sent = 0;
      for (;;) {
        const r = await redeliver(
          { pool, ...(temporal ? { temporal: temporal.client } : {}) },
          { pipeline: p.name, due: false, limit: 50 },
        );
        sent += r.delivered;
        for (const e of r.errors) console.log(`still refused: ${e}`);
        if (r.failed > 0)
          throw new UserError(
            `${plural(r.failed, 'delivery', 'deliveries')} of ${p.name} still refused; delivered ${sent}`,
          );
        if (r.delivered === 0) break;
      }
      console.log(
        `Delivered ${plural(sent, 'refused delivery', 'refused deliveries')} of ${p.name}.`,
      );
    } finally {
      await temporal?.close();
    }
  } finally {
    await pool.end();
  }
}
