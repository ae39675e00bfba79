// OpenAI's Batch API for /v1/embeddings, at half the online price within 24 hours: a JSONL file of
// requests uploaded through the Files API, a batch created on it, its status polled, its output
// and error files read back line by line. The client (and its key) is OpenAIProvider's; errors are
// translated by the same function as the online calls'.
import { toFile, type OpenAI } from 'openai';
import type { OpenAIEmbeddingConfig } from '../config/pipeline.js';
import { modelFacts, reducesDimensions } from './models.js';
import { decode, OpenAIProvider, translate, withPrefix } from './openai.js';
import type { EmbeddingProvider } from './types.js';

/** A batch's state in embedsync's terms: still running, done (with files), or over without output. */
export type BatchPhase = 'running' | 'completed' | 'failed' | 'cancelled' | 'expired';

export interface ProviderBatch {
  id: string;
  /** As OpenAI says it: validating, in_progress, finalizing, completed, … */
  status: string;
  phase: BatchPhase;
  counts: { total: number; completed: number; failed: number };
  outputFileId: string | null;
  errorFileId: string | null;
  /** Why a failed batch failed: OpenAI's codes, such as token_limit_exceeded. */
  errors: { code: string; message: string }[];
  metadata: Record<string, string>;
  createdAt: number;
}

/** One line of an output or error file. */
export interface BatchOutputLine {
  customId: string;
  /** The embeddings in input order (a successful line). */
  vectors?: number[][];
  tokens: number;
  /** Why the line failed (an error file's line). */
  error?: string;
  /**
   * The line failed through no fault of its input (the batch expired or was cancelled before it
   * ran, a timeout, a server error): worth sending again, unlike an input the model refuses.
   */
  retryable?: boolean;
}

/** OpenAI's codes for a line that did not run, and statuses that say nothing of the input. */
const NOT_RUN = new Set(['batch_expired', 'batch_cancelled', 'request_timeout']);

/** What OpenAI's status means for the workflow (pure). */
export function batchPhase(status: string): BatchPhase {
  switch (status) {
    case 'completed':
      return 'completed';
    case 'failed':
      return 'failed';
    case 'cancelled':
      return 'cancelled';
    case 'expired':
      return 'expired';
    default:
      // validating, in_progress, finalizing, cancelling: not over yet.
      return 'running';
  }
}

/** One request line of a batch input file: the embeddings request a row's chunks make. */
export function requestLine(
  config: OpenAIEmbeddingConfig,
  customId: string,
  inputs: readonly string[],
): string {
  const facts = modelFacts(config);
  return JSON.stringify({
    custom_id: customId,
    method: 'POST',
    url: '/v1/embeddings',
    body: {
      model: config.model,
      input: withPrefix(config, 'document', inputs),
      // OpenAI's own API, which knows base64: a quarter of the output file's float size.
      encoding_format: config.encodingFormat ?? 'base64',
      ...(reducesDimensions(facts, config.dimensions) ? { dimensions: config.dimensions } : {}),
    },
  });
}

/** Reads one line of an output or error file (pure). */
export function parseOutputLine(line: string): BatchOutputLine {
  const entry = JSON.parse(line) as {
    custom_id: string;
    response: { status_code: number; body: unknown } | null;
    error: { code?: string; message?: string } | null;
  };
  const body = entry.response?.body as
    | {
        data?: { index: number; embedding: number[] | string }[];
        usage?: { prompt_tokens?: number };
        error?: { message?: string };
      }
    | undefined;
  if (entry.response?.status_code === 200 && body?.data) {
    const vectors = [...body.data]
      .sort((a, b) => a.index - b.index)
      .map((d) => decode(d.embedding));
    return { customId: entry.custom_id, vectors, tokens: body.usage?.prompt_tokens ?? 0 };
  }
  const message =
    body?.error?.message ?? entry.error?.message ?? `status ${entry.response?.status_code ?? '?'}`;
  const status = entry.response?.status_code;
  const retryable =
    NOT_RUN.has(entry.error?.code ?? '') || status === undefined || status === 429 || status >= 500;
  return { customId: entry.custom_id, tokens: 0, error: message, retryable };
}

export class BatchNotOfferedError extends Error {
  constructor(
    readonly pipeline: string,
    readonly provider: string,
  ) {
    super(
      `pipeline ${pipeline} embeds with ${provider}: batch mode needs OpenAI's Batch API (embedding.provider: openai); run the backfill without --batch`,
    );
    this.name = 'BatchNotOfferedError';
  }
}

/** The Batch API for one pipeline's embedding config. */
export class OpenAIBatches {
  private readonly client: OpenAI;
  private readonly apiKey: string | undefined;

  constructor(
    provider: EmbeddingProvider,
    readonly config: OpenAIEmbeddingConfig,
  ) {
    if (!(provider instanceof OpenAIProvider))
      throw new Error(`the worker's "openai" provider is not OpenAI's adapter`);
    ({ client: this.client, apiKey: this.apiKey } = provider.client(config));
  }

  /** Uploads the request lines and creates the batch, named by `metadata`. */
  async submit(lines: readonly string[], metadata: Record<string, string>): Promise<ProviderBatch> {
    return this.call(async () => {
      const file = await this.client.files.create({
        file: await toFile(
          Buffer.from(`${lines.join('\n')}\n`),
          `${metadata.part ?? 'batch'}.jsonl`,
        ),
        purpose: 'batch',
      });
      const batch = await this.client.batches.create({
        input_file_id: file.id,
        endpoint: '/v1/embeddings',
        completion_window: '24h',
        metadata,
      });
      return toBatch(batch);
    });
  }

  /**
   * The newest batch whose metadata has `key` = `value`, among those created since `since` (unix
   * seconds): how a retry finds the batch an attempt killed after creating it had made.
   */
  async find(key: string, value: string, since: number): Promise<ProviderBatch | undefined> {
    return this.call(async () => {
      for await (const batch of this.client.batches.list({ limit: 100 })) {
        if (batch.created_at < since) return undefined; // newest first: nothing older can match
        if (batch.metadata?.[key] === value) return toBatch(batch);
      }
      return undefined;
    });
  }

  async retrieve(id: string): Promise<ProviderBatch> {
    return this.call(async () => toBatch(await this.client.batches.retrieve(id)));
  }

  async cancel(id: string): Promise<ProviderBatch> {
    return this.call(async () => toBatch(await this.client.batches.cancel(id)));
  }

  async deleteFile(id: string): Promise<void> {
    await this.call(() => this.client.files.delete(id));
  }

  /** The lines of an output or error file, read as they arrive (files of 50,000 rows are large). */
  async *lines(fileId: string): AsyncGenerator<BatchOutputLine> {
    const response = await this.call(() => this.client.files.content(fileId));
    if (!response.body) return;
    let rest = '';
    const decoder = new TextDecoder();
    for await (const part of response.body as unknown as AsyncIterable<Uint8Array>) {
      rest += decoder.decode(part, { stream: true });
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') yield parseOutputLine(line);
    }
    rest += decoder.decode();
    if (rest.trim() !== '') yield parseOutputLine(rest);
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translate(err, [this.apiKey]);
    }
  }
}

function toBatch(b: OpenAI.Batches.Batch): ProviderBatch {
  return {
    id: b.id,
    status: b.status,
    phase: batchPhase(b.status),
    counts: {
      total: b.request_counts?.total ?? 0,
      completed: b.request_counts?.completed ?? 0,
      failed: b.request_counts?.failed ?? 0,
    },
    outputFileId: b.output_file_id ?? null,
    errorFileId: b.error_file_id ?? null,
    errors: (b.errors?.data ?? []).map((e) => ({ code: e.code ?? '', message: e.message ?? '' })),
    metadata: (b.metadata as Record<string, string> | null) ?? {},
    createdAt: b.created_at,
  };
}
