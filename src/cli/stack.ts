// `npx embedsync stack <up|down|status|install>`: the local PostgreSQL + pgvector and Temporal dev
// server.
import { Command } from 'commander';
import { LOCAL_DEFAULTS, readEnv, type Env } from '../config/env.js';
import { ensureStack, installStack, stackStatus, stopStack, StackError } from '../stack/index.js';

const say = (line: string): void => console.log(line);

/** Precedence: --home flag > EMBEDSYNC_HOME > default. */
function envWith(opts: { home?: string }): Env {
  const env = readEnv();
  return opts.home ? { ...env, home: opts.home } : env;
}

const program = new Command('embedsync stack')
  .description(
    `Runs the local stack embedsync needs for development and tests, without Docker:
PostgreSQL with pgvector on 127.0.0.1:${LOCAL_DEFAULTS.postgresPort} and a Temporal dev server on
127.0.0.1:${LOCAL_DEFAULTS.temporalPort} (Web UI on :${LOCAL_DEFAULTS.temporalUiPort}). State lives in EMBEDSYNC_HOME (default ${LOCAL_DEFAULTS.home}).
Where DATABASE_URL or TEMPORAL_ADDRESS is set, that part is yours and is left alone.
With Docker, \`docker compose up\` runs the same stack instead.`,
  )
  .option('--home <dir>', 'state directory (overrides EMBEDSYNC_HOME)')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync stack up        start the stack, print its URLs, leave it running
  npx embedsync stack status    what is installed, what runs
  npx embedsync stack down      stop it; the data stays for the next \`up\`
  npx embedsync stack install   install missing pieces only (CI machines, as root)`,
  );

program
  .command('up')
  .description('start PostgreSQL and Temporal (installing what is missing) and leave them running')
  .option('--no-install', 'fail instead of installing missing PostgreSQL, pgvector or temporal CLI')
  .action(async (opts: { install: boolean }) => {
    const stack = await ensureStack(envWith(program.opts()), { install: opts.install, log: say });
    say('');
    say(`database     ${stack.databaseUrl}`);
    say(`temporal     ${stack.temporalAddress} (namespace ${stack.temporalNamespace})`);
    say(`web UI       ${stack.temporalUiUrl}`);
    say('');
    say('running in the background; stop with: npx embedsync stack down');
  });

program
  .command('down')
  .description('stop the PostgreSQL and Temporal running from the state directory (data is kept)')
  .action(async () => {
    await stopStack(envWith(program.opts()), { log: say });
  });

program
  .command('status')
  .description('show what is installed and what is running')
  .action(async () => {
    const s = await stackStatus(envWith(program.opts()));
    const state = (pid: number | undefined, answers: boolean): string =>
      pid !== undefined
        ? `running (pid ${pid})`
        : answers
          ? 'answering, started elsewhere'
          : 'stopped';
    say(`home         ${s.home}`);
    say(
      `postgres     ${state(s.postgres.pid, s.postgres.answers)} on 127.0.0.1:${LOCAL_DEFAULTS.postgresPort}`,
    );
    say(`             ${s.postgres.install}, pgvector ${s.postgres.pgvector ?? 'not installed'}`);
    say(
      `temporal     ${state(s.temporal.pid, s.temporal.answers)} on 127.0.0.1:${LOCAL_DEFAULTS.temporalPort}`,
    );
    if (s.temporal.searchAttributes !== undefined)
      say(
        `             search attributes ${s.temporal.searchAttributes ? 'registered' : 'missing'}`,
      );
    say(`             CLI ${s.temporal.cli ?? 'not installed'}`);
  });

program
  .command('install')
  .description(
    'install missing PostgreSQL, pgvector (apt, as root) and the temporal CLI (go install); start nothing',
  )
  .action(async () => {
    await installStack(envWith(program.opts()), { log: say });
    say('everything the local stack needs is installed');
  });

try {
  await program.parseAsync();
} catch (err) {
  // One clear line; for a failed command, the end of its output or log below it.
  console.error(`stack ${program.args[0] ?? ''}: ${(err as Error).message}`);
  if (err instanceof StackError && err.command && !err.message.includes(err.command))
    console.error(`  command: ${err.command}`);
  if (err instanceof StackError && err.detail) console.error(err.detail.replace(/^/gm, '  | '));
  process.exitCode = 1;
}
