import { Command } from 'commander';
import { createPool } from '../db/pool.js';
import { migrate } from '../db/migrator.js';
import { databaseUrl, runMain } from './common.js';

const program = new Command('embedsync migrate')
  .description(
    "Apply embedsync's schema migrations (sql/) to DATABASE_URL. Safe to run repeatedly and concurrently.",
  )
  .addHelpText(
    'after',
    '\nThe worker, poller and apply commands also migrate at start; this is for those who prefer a separate step.',
  );
program.parse();

runMain(async (env) => {
  const pool = createPool(databaseUrl(env), { max: 1 });
  try {
    const applied = await migrate(pool);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
  } finally {
    await pool.end();
  }
});
