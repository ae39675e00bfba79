// A local model loaded on a thread of its own (src/providers/local-thread.mjs), and the messages
// between it and the provider: a sentence-embedding model embeds texts, a cross-encoder scores
// (query, document) pairs. The thread is referenced only while a request is out, so an idle model
// never keeps a process alive.
import { Worker } from 'node:worker_threads';
import type { Pooling } from './local-models.js';

interface CommonSettings {
  /** The directory holding models; the model's files are in <modelsDir>/<name>/. */
  modelsDir: string;
  name: string;
  dtype: 'q8' | 'fp32';
  maxTokens: number;
  /** ONNX Runtime's intra-op threads; inter-op is 1 (one inference at a time anyway). */
  threads: number;
}

/** What the thread is started with: which model, and whether it embeds or scores. */
export type ThreadSettings =
  | (CommonSettings & { task: 'embed'; pooling: Pooling })
  | (CommonSettings & { task: 'score'; modelType: string });

type Work = { texts: string[] } | { query: string; documents: string[] };
export type ThreadRequest = Work & { id: number };

export type ThreadReply =
  | { kind: 'ready'; intraOpNumThreads: number; interOpNumThreads: number }
  | { kind: 'failed'; message: string }
  /** Vectors are absent when a text has more tokens than the model takes: it was not run. */
  | { kind: 'embedded'; id: number; tokens: number[]; vectors?: Float32Array; dimensions?: number }
  /** One logit per document, in the request's order; tokens of each pair before any cut. */
  | { kind: 'scored'; id: number; tokens: number[]; scores: Float32Array }
  | { kind: 'error'; id: number; message: string };

export interface Embedded {
  /** Tokens of each text, the model's markers included. */
  tokens: number[];
  /** Unit-length vectors; absent when a text is longer than the model takes. */
  vectors?: number[][];
}

export interface Scored {
  /** Tokens of each (query, document) pair, markers included, before the tokenizer cut it. */
  tokens: number[];
  /** The model's relevance logit of each document, in the order sent. */
  scores: number[];
}

/** A loaded model: what the provider needs of the runtime. */
export interface LocalRuntime {
  /** A sentence-embedding model's vectors (the thread refuses this of a cross-encoder). */
  embed(texts: string[]): Promise<Embedded>;
  /** A cross-encoder's scores of each document for the query (refused by an embedding model). */
  score(query: string, documents: string[]): Promise<Scored>;
  /** The ONNX Runtime thread settings the session was created with. */
  readonly sessionThreads: { intraOp: number; interOp: number };
  close(): Promise<void>;
}

export type LoadModel = (settings: ThreadSettings) => Promise<LocalRuntime>;

// Plain JavaScript, so it loads on any Node the project runs on, with or without a TypeScript
// loader (worker threads do not inherit the one the commands register).
const THREAD = new URL('./local-thread.mjs', import.meta.url);

export class LocalModelLoadError extends Error {
  override name = 'LocalModelLoadError';
}

type Answer = Extract<ThreadReply, { kind: 'embedded' | 'scored' }>;

/** Starts the model's thread and resolves once the model is loaded. */
export const loadOnThread: LoadModel = (settings) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(THREAD, { workerData: settings });
    const pending = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
    let nextId = 1;
    let ready = false;
    let exited = false;
    const settle = () => (pending.size > 0 ? worker.ref() : worker.unref());
    const ask = (work: Work): Promise<Answer> =>
      new Promise<Answer>((res, rej) => {
        if (exited) {
          rej(new LocalModelLoadError(`the thread of ${settings.name} has exited`));
          return;
        }
        const id = nextId++;
        pending.set(id, { resolve: res, reject: rej });
        settle();
        worker.postMessage({ id, ...work } satisfies ThreadRequest);
      });

    worker.on('message', (reply: ThreadReply) => {
      if (reply.kind === 'ready') {
        ready = true;
        settle();
        resolve({
          sessionThreads: { intraOp: reply.intraOpNumThreads, interOp: reply.interOpNumThreads },
          async embed(texts) {
            const answer = await ask({ texts });
            if (answer.kind !== 'embedded') throw new Error(`${settings.name} does not embed`);
            return { tokens: answer.tokens, vectors: rows(answer) };
          },
          async score(query, documents) {
            const answer = await ask({ query, documents });
            if (answer.kind !== 'scored') throw new Error(`${settings.name} does not score`);
            return { tokens: answer.tokens, scores: Array.from(answer.scores) };
          },
          async close() {
            await worker.terminate();
          },
        });
        return;
      }
      if (reply.kind === 'failed') {
        reject(new LocalModelLoadError(`${settings.name} did not load: ${reply.message}`));
        void worker.terminate();
        return;
      }
      const waiting = pending.get(reply.id);
      pending.delete(reply.id);
      settle();
      if (!waiting) return;
      if (reply.kind === 'error') waiting.reject(new Error(reply.message));
      else waiting.resolve(reply);
    });
    worker.on('error', (err: Error) => {
      if (!ready) reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    });
    worker.on('exit', (code) => {
      exited = true;
      const err = new LocalModelLoadError(`the thread of ${settings.name} exited (${code})`);
      if (!ready) reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    });
  });

function rows(reply: Extract<ThreadReply, { kind: 'embedded' }>): number[][] | undefined {
  const { vectors, dimensions } = reply;
  if (!vectors || !dimensions) return undefined;
  return Array.from({ length: vectors.length / dimensions }, (_, i) =>
    Array.from(vectors.subarray(i * dimensions, (i + 1) * dimensions)),
  );
}
