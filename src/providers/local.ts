// The local provider: a sentence-embedding model (src/providers/local-models.ts) run in the worker's
// own process through ONNX Runtime, from files fetched once (`embedsync model fetch`); it never
// reaches the network. Loaded lazily, once per process; one inference at a time, on a set number
// of threads, so the model cannot starve the worker's workflows and its database work
// (docs/architecture.md, decision 25).
import path from 'node:path';
import {
  DEFAULT_LOCAL_THREADS,
  defaultModelsDir,
  LOCAL_DEFAULTS,
  type LocalModelEnv,
} from '../config/env.js';
import type { LocalEmbeddingConfig } from '../config/pipeline.js';
import { InvalidInputError, ModelUnavailableError } from './errors.js';
import { FETCH_COMMAND, missingModelFiles, modelDirectory } from './local-fetch.js';
import { findLocalModel, withPrefix, type LocalModel } from './local-models.js';
import type { EmbeddingProvider, EmbedRequest, EmbedResponse } from './types.js';

/** A loaded model: what the provider needs of the runtime. */
export interface LocalRuntime {
  /** Unit-length vectors, pooled as the model says, one per text. */
  embed(texts: string[]): Promise<number[][]>;
  /** Tokens of the model's own tokenizer, its markers included. */
  countTokens(text: string): number;
}

export interface LoadOptions {
  /** The model's own directory. */
  dir: string;
  model: LocalModel;
  threads: number;
}

export type LoadModel = (options: LoadOptions) => Promise<LocalRuntime>;

/** The model's directory lacks files: `embedsync model fetch` has not put them there. */
export class LocalModelMissingError extends ModelUnavailableError {
  override name = 'LocalModelMissingError';
  constructor(
    readonly model: string,
    readonly dir: string,
    missing: readonly string[],
  ) {
    super(
      'local',
      `local model ${model} is not in ${dir} (missing ${missing.join(', ')}); fetch it once with: ${FETCH_COMMAND} --model ${model} --dir ${path.dirname(dir)}`,
    );
  }
}

export class LocalProvider implements EmbeddingProvider {
  readonly name = 'local';
  // Inference pads a batch to its longest text, so batches stay small; a request is one batch.
  readonly maxInputsPerRequest = 32;
  readonly threads: number;
  private readonly modelsDir: string;
  private readonly loaded = new Map<string, Promise<LocalRuntime>>();
  // One inference at a time in this process: the thread budget holds however many activities run.
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    env: Partial<LocalModelEnv> = {},
    private readonly load: LoadModel = loadWithTransformers,
  ) {
    this.threads = env.threads ?? DEFAULT_LOCAL_THREADS;
    this.modelsDir = path.resolve(env.modelsDir ?? defaultModelsDir(LOCAL_DEFAULTS.home));
  }

  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    const config = this.config(request);
    const model = findLocalModel(config.model);
    if (!model)
      throw new ModelUnavailableError('local', `no local model "${config.model}" is known`);
    if (request.dimensions !== model.dimensions)
      throw new InvalidInputError(
        'local',
        `${model.name} produces ${model.dimensions} dimensions, not ${request.dimensions}`,
      );
    const dir = modelDirectory(path.resolve(config.modelDir ?? this.modelsDir), model);
    const runtime = await this.runtime(dir, model);
    const texts = request.texts.map((t) => withPrefix(model, request.inputType, t));
    const counts = texts.map((t) => runtime.countTokens(t));
    const tooLong = counts.findIndex((n) => n > model.maxTokens);
    if (tooLong >= 0)
      // Refused, never cut: the batch is bisected down to this text, whose row is dead-lettered.
      throw new InvalidInputError(
        'local',
        `input ${tooLong} is ${counts[tooLong]} tokens, longer than the ${model.maxTokens} ${model.name} takes; it was not cut short`,
      );
    request.signal?.throwIfAborted();
    const vectors = await this.serially(() => runtime.embed(texts));
    return { vectors, tokens: counts.reduce((sum, n) => sum + n, 0) };
  }

  /** Loads the model now rather than at the first request (a worker's start, a benchmark). */
  async warm(config: LocalEmbeddingConfig): Promise<void> {
    const model = findLocalModel(config.model);
    if (!model) throw new ModelUnavailableError('local', `no local model "${config.model}"`);
    await this.runtime(
      modelDirectory(path.resolve(config.modelDir ?? this.modelsDir), model),
      model,
    );
  }

  private runtime(dir: string, model: LocalModel): Promise<LocalRuntime> {
    let runtime = this.loaded.get(dir);
    if (!runtime) {
      const missing = missingModelFiles(path.dirname(dir), model);
      if (missing.length > 0) throw new LocalModelMissingError(model.name, dir, missing);
      // In the queue too: loads are not run side by side (the runtime's settings are global).
      runtime = this.serially(() => this.load({ dir, model, threads: this.threads }));
      // A load that failed is tried again by the next request, not remembered.
      runtime.catch(() => this.loaded.delete(dir));
      this.loaded.set(dir, runtime);
    }
    return runtime;
  }

  private serially<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private config(request: EmbedRequest): LocalEmbeddingConfig {
    if (request.embedding?.provider === 'local') return request.embedding;
    return { provider: 'local', model: request.model, dimensions: request.dimensions };
  }
}

/**
 * The model through transformers.js and onnxruntime-node, from its directory alone: remote models
 * are off, so a missing file is an error, never a download.
 */
export const loadWithTransformers: LoadModel = async ({ dir, model, threads }) => {
  const { env, pipeline } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(dir);
  const extractor = await pipeline('feature-extraction', path.basename(dir), {
    dtype: model.dtype,
    device: 'cpu',
    local_files_only: true,
    session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
  });
  return {
    async embed(texts) {
      const output = await extractor(texts, { pooling: model.pooling, normalize: true });
      return output.tolist() as number[][];
    },
    countTokens: (text) => extractor.tokenizer.encode(text).length,
  };
};
