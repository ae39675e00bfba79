#!/usr/bin/env node
// The embedsync command: `embedsync <command> [options]`. The commands are the TypeScript modules
// in src/cli/; tsx is registered in this process and the command runs here too, not in a child
// process, so Ctrl-C and SIGTERM reach it directly and it stops as gracefully as it was written to.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { belowNodeFloor, NODE_FLOOR } from './node-floor.js';

/**
 * What a user types → the module in src/cli/ and, for modules with several commands, its
 * subcommand.
 */
const COMMANDS = {
  apply: ['pipeline', 'apply', 'validate a pipeline file and install every pipeline in it'],
  pipelines: ['pipeline', 'pipelines', 'list the pipelines'],
  remove: [
    'pipeline',
    'remove',
    "remove a pipeline's triggers and queue (and, if asked, its vector table)",
  ],
  backfill: ['backfill', undefined, "embed a pipeline's existing rows, as a durable workflow"],
  reembed: [
    'reembed',
    undefined,
    'build a changed embedding config beside the live one, then swap it in',
  ],
  pause: ['control', 'pause', "hold a pipeline's sync and its running backfill"],
  resume: ['control', 'resume', 'carry on after a pause'],
  status: ['status', undefined, 'where each pipeline stands (--json for scripts)'],
  verify: ['verify', undefined, "check a pipeline's vectors against its source table"],
  reindex: [
    'reindex',
    undefined,
    "rebuild a pipeline's HNSW index concurrently, reads and writes going on",
  ],
  redeliver: ['redeliver', undefined, "send a pipeline's deliveries a sink refused again now"],
  search: ['search', undefined, "search a pipeline's vectors with text"],
  worker: ['worker', undefined, 'run a worker: the workflows and activities'],
  poller: ['poller', undefined, 'run a poller: captured changes into sync workflows'],
  migrate: ['migrate', undefined, "apply embedsync's schema migrations"],
  dev: ['dev', undefined, 'everything on this machine, with a demo pipeline'],
  model: [
    'model',
    undefined,
    'fetch a model for provider: local once, or list the models it runs (fetch, list)',
  ],
  stack: [
    'stack',
    undefined,
    'the local Postgres + pgvector and Temporal dev server (up, down, status, install)',
  ],
  'mock-provider': [
    'mock-provider',
    undefined,
    "a local server speaking OpenAI's, Bedrock's, Gemini's and Voyage AI's embedding protocols",
  ],
};

function help() {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, [, , summary]]) => `  ${name.padEnd(width)}  ${summary}`,
  );
  return `Usage: embedsync <command> [options]

Keeps pgvector embeddings in step with PostgreSQL tables, durably, on Temporal.

Commands:
${lines.join('\n')}

embedsync <command> --help shows a command's options. In a clone of the repository: npx embedsync <command>.
Environment: DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, EMBEDSYNC_TASK_QUEUE (see embedsync worker --help).
`;
}

// The floor is package.json's engines.node (bin/node-floor.js). An older system Node is usual and fine
// under npm: `npm ci` installs the project's own Node 24 (optionalDependencies), which `npm run` and
// `npx` put first on PATH. Checked before tsx or any command is loaded, so an old Node says so here
// rather than failing somewhere inside them.
if (belowNodeFloor()) {
  process.stderr.write(
    `embedsync: needs Node.js ${NODE_FLOOR} or later; this is Node.js ${process.versions.node} (${process.execPath}).\n` +
      'After `npm ci`, which installs Node 24 for this project, run it through npm: ' +
      '`npx embedsync …`, `npm run …`, or `node_modules/.bin/node bin/embedsync.js …`. ' +
      'Or install Node.js 24.\n',
  );
  process.exit(1);
}

const [command, ...rest] = process.argv.slice(2);
if (
  command === undefined ||
  command === '--help' ||
  command === '-h' ||
  (command === 'help' && rest.length === 0)
) {
  process.stdout.write(help());
} else if (command === '--version' || command === '-V') {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`${pkg.version}\n`);
} else {
  // `embedsync help status` is `embedsync status --help`.
  const [name, args] = command === 'help' ? [rest[0], ['--help']] : [command, rest];
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    const known = Object.keys(COMMANDS).join(', ');
    process.stderr.write(`embedsync: unknown command "${name}"; the commands are: ${known}\n`);
    process.exitCode = 1;
  } else {
    const [module, subcommand] = entry;
    const file = new URL(`../src/cli/${module}.ts`, import.meta.url);
    const path = fileURLToPath(file);
    // Imported only now: on an older Node it would fail before the version check could speak.
    const { register } = await import('tsx/esm/api');
    register();
    // The commands read process.argv as `node <script> [subcommand] …options`.
    process.argv = [process.argv[0], path, ...(subcommand ? [subcommand] : []), ...args];
    await import(file.href);
  }
}
