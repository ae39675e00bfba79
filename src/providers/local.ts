// The local provider: a sentence-embedding model (src/providers/local-models.ts) run in the worker's
// own process through ONNX Runtime, from files fetched once (`embedsync model fetch`); it never
// reaches the network. Loaded lazily, once per process, on a thread of its own; one inference at a
// time on a set number of threads, so the model cannot starve the worker's workflows and its
// database work (docs/architecture.md, decision 25). The same, for a cross-encoder reranking a
// search's candidates in the searching process (decision 30).
import path from 'node:path';
import {
  DEFAULT_LOCAL_THREADS,
  defaultModelsDir,
  LOCAL_DEFAULTS,
  type LocalModelEnv,
} from '../config/env.js';
import type { LocalEmbeddingConfig, LocalRerankConfig } from '../config/pipeline.js';
import { InvalidInputError, ModelUnavailableError } from './errors.js';
import { FETCH_COMMAND, missingModelFiles, modelDirectory } from './local-fetch.js';
import {
  LOCAL_MODELS,
  LOCAL_RERANK_MODELS,
  withPrefix,
  type LocalModel,
  type LocalRerankModel,
  type ModelFiles,
} from './local-models.js';
import {
  LocalModelLoadError,
  loadOnThread,
  type LoadModel,
  type LocalRuntime,
  type ThreadSettings,
} from './local-runtime.js';
import type {
  EmbeddingProvider,
  EmbedRequest,
  EmbedResponse,
  RerankRequest,
  RerankResponse,
} from './types.js';

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
  // One inference at a time in this process, whichever model: the thread budget holds however many
  // activities run at once.
  private queue: Promise<unknown> = Promise.resolve();

  private readonly load: LoadModel;
  private readonly models: readonly LocalModel[];
  private readonly rerankModels: readonly LocalRerankModel[];

  constructor(
    env: Partial<LocalModelEnv> = {},
    /** Another runtime or model tables (tests). */
    options: {
      load?: LoadModel;
      models?: readonly LocalModel[];
      rerankModels?: readonly LocalRerankModel[];
    } = {},
  ) {
    this.load = options.load ?? loadOnThread;
    this.models = options.models ?? LOCAL_MODELS;
    this.rerankModels = options.rerankModels ?? LOCAL_RERANK_MODELS;
    this.threads = env.threads ?? DEFAULT_LOCAL_THREADS;
    this.modelsDir = path.resolve(env.modelsDir ?? defaultModelsDir(LOCAL_DEFAULTS.home));
  }

  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    const config = this.config(request);
    const model = this.models.find((m) => m.name === config.model);
    if (!model)
      throw new ModelUnavailableError('local', `no local model "${config.model}" is known`);
    if (request.dimensions !== model.dimensions)
      throw new InvalidInputError(
        'local',
        `${model.name} produces ${model.dimensions} dimensions, not ${request.dimensions}`,
      );
    const dir = modelDirectory(path.resolve(config.modelDir ?? this.modelsDir), model);
    const runtime = await this.runtime(dir, model, embedSettings(model));
    const texts = request.texts.map((t) => withPrefix(model, request.inputType, t));
    request.signal?.throwIfAborted();
    const result = await this.run(dir, () => runtime.embed(texts));
    const tooLong = result.tokens.findIndex((n) => n > model.maxTokens);
    if (tooLong >= 0 || !result.vectors)
      // Refused, never cut: the batch is bisected down to this text, whose row is dead-lettered.
      throw new InvalidInputError(
        'local',
        `input ${tooLong} is ${result.tokens[tooLong]} tokens, longer than the ${model.maxTokens} ${model.name} takes; it was not cut short`,
      );
    return { vectors: result.vectors, tokens: result.tokens.reduce((sum, n) => sum + n, 0) };
  }

  /**
   * The documents' relevance to the query by a cross-encoder, most relevant first: each score is
   * the model's logit for the pair. A document longer than the model takes is scored on its
   * beginning (the pair is cut to the model's input); nothing is refused for its length.
   */
  async rerank(request: RerankRequest): Promise<RerankResponse> {
    const config = request.rerank;
    if (config.provider !== 'local')
      throw new ModelUnavailableError('local', `a ${config.provider} rerank config is not for it`);
    const model = this.rerankModels.find((m) => m.name === config.model);
    if (!model)
      throw new ModelUnavailableError('local', `no local rerank model "${config.model}" is known`);
    if (request.documents.length === 0) return { results: [] };
    const dir = modelDirectory(path.resolve(config.modelDir ?? this.modelsDir), model);
    const runtime = await this.runtime(dir, model, scoreSettings(model));
    request.signal?.throwIfAborted();
    const { scores } = await this.run(dir, () => runtime.score(request.query, request.documents));
    const results = scores
      .map((relevanceScore, index) => ({ index, relevanceScore }))
      // Stable: documents the model scores alike keep the order they came in.
      .sort((a, b) => b.relevanceScore - a.relevanceScore)
      .slice(0, request.topN);
    return { results };
  }

  /** Loads the model now rather than at the first request (a worker's start, a benchmark). */
  async warm(config: LocalEmbeddingConfig | LocalRerankConfig): Promise<LocalRuntime> {
    if ('dimensions' in config) {
      const model = this.models.find((m) => m.name === config.model);
      if (!model) throw new ModelUnavailableError('local', `no local model "${config.model}"`);
      const dir = modelDirectory(path.resolve(config.modelDir ?? this.modelsDir), model);
      return this.runtime(dir, model, embedSettings(model));
    }
    const model = this.rerankModels.find((m) => m.name === config.model);
    if (!model) throw new ModelUnavailableError('local', `no local rerank model "${config.model}"`);
    const dir = modelDirectory(path.resolve(config.modelDir ?? this.modelsDir), model);
    return this.runtime(dir, model, scoreSettings(model));
  }

  /** One inference, after any other in this process; a thread that died is loaded again next. */
  private async run<T>(dir: string, inference: () => Promise<T>): Promise<T> {
    try {
      return await this.serially(inference);
    } catch (err) {
      if (err instanceof LocalModelLoadError) this.loaded.delete(dir);
      throw err;
    }
  }

  private runtime(
    dir: string,
    model: ModelFiles,
    settings: DistributiveOmit<ThreadSettings, 'modelsDir' | 'threads'>,
  ): Promise<LocalRuntime> {
    let runtime = this.loaded.get(dir);
    if (!runtime) {
      const missing = missingModelFiles(path.dirname(dir), model);
      if (missing.length > 0) throw new LocalModelMissingError(model.name, dir, missing);
      runtime = this.load({ ...settings, modelsDir: path.dirname(dir), threads: this.threads });
      // A load that failed is tried again by the next request, not remembered.
      void runtime.catch(() => this.loaded.delete(dir));
      this.loaded.set(dir, runtime);
    }
    return runtime;
  }

  /** Stops the models' threads (tests, benchmarks); a later request loads again. */
  async close(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.all(all.map(async (r) => (await r.catch(() => undefined))?.close()));
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

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const embedSettings = (model: LocalModel) =>
  ({
    task: 'embed',
    name: model.name,
    dtype: model.dtype,
    pooling: model.pooling,
    maxTokens: model.maxTokens,
  }) as const;

const scoreSettings = (model: LocalRerankModel) =>
  ({
    task: 'score',
    name: model.name,
    dtype: model.dtype,
    modelType: model.modelType,
    maxTokens: model.maxTokens,
  }) as const;
