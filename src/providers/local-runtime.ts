// A local model loaded on a thread of its own (src/providers/local-thread.mjs), and the messages
// between it and the provider. The thread is referenced only while a request is out, so an idle
// model never keeps a process alive.
import { Worker } from 'node:worker_threads';
import type { Pooling } from './local-models.js';

/** What the thread is started with. */
export interface ThreadSettings {
  /** The directory holding models; the model's files are in <modelsDir>/<name>/. */
  modelsDir: string;
  name: string;
  dtype: 'q8' | 'fp32';
  pooling: Pooling;
  maxTokens: number;
  /** ONNX Runtime's intra-op threads; inter-op is 1 (one inference at a time anyway). */
  threads: number;
}

export interface ThreadRequest {
  id: number;
  texts: string[];
}

export type ThreadReply =
  | { kind: 'ready'; intraOpNumThreads: number; interOpNumThreads: number }
  | { kind: 'failed'; message: string }
  /** Vectors are absent when a text has more tokens than the model takes: it was not run. */
  | { kind: 'embedded'; id: number; tokens: number[]; vectors?: Float32Array; dimensions?: number }
  | { kind: 'error'; id: number; message: string };

export interface Embedded {
  /** Tokens of each text, the model's markers included. */
  tokens: number[];
  /** Unit-length vectors; absent when a text is longer than the model takes. */
  vectors?: number[][];
}

/** A loaded model: what the provider needs of the runtime. */
export interface LocalRuntime {
  embed(texts: string[]): Promise<Embedded>;
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

/** Starts the model's thread and resolves once the model is loaded. */
export const loadOnThread: LoadModel = (settings) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(THREAD, { workerData: settings });
    const pending = new Map<
      number,
      { resolve: (e: Embedded) => void; reject: (e: Error) => void }
    >();
    let nextId = 1;
    let ready = false;
    let exited = false;
    const settle = () => (pending.size > 0 ? worker.ref() : worker.unref());

    worker.on('message', (reply: ThreadReply) => {
      if (reply.kind === 'ready') {
        ready = true;
        settle();
        resolve({
          sessionThreads: { intraOp: reply.intraOpNumThreads, interOp: reply.interOpNumThreads },
          embed(texts) {
            return new Promise<Embedded>((res, rej) => {
              if (exited) {
                rej(new LocalModelLoadError(`the thread of ${settings.name} has exited`));
                return;
              }
              const id = nextId++;
              pending.set(id, { resolve: res, reject: rej });
              settle();
              worker.postMessage({ id, texts } satisfies ThreadRequest);
            });
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
      else waiting.resolve({ tokens: reply.tokens, vectors: rows(reply) });
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
