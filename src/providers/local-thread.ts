// The thread a local model runs on (src/providers/local-runtime.ts starts it). Tokenising, ONNX
// inference and pooling all block the thread they run on, for seconds while the model loads and a
// fraction of a second a batch; here they block this thread, never the worker's event loop, which
// keeps its workflows and heartbeats moving. Requests are answered one at a time, in order.
//
// Node runs this file by stripping its types, so it imports nothing of the project's but types.
import { parentPort, workerData } from 'node:worker_threads';
import type { ThreadRequest, ThreadReply, ThreadSettings } from './local-runtime.js';

const settings = workerData as ThreadSettings;
const port = parentPort;
if (!port) throw new Error('local-thread.ts runs as a worker thread only');

const { env, pipeline } = await import('@huggingface/transformers');
// Files from the model's directory only: a missing file is an error, never a download.
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = settings.modelsDir;

let queue: Promise<void> = Promise.resolve();

async function load() {
  return pipeline('feature-extraction', settings.name, {
    dtype: settings.dtype,
    device: 'cpu',
    local_files_only: true,
    session_options: {
      intraOpNumThreads: settings.threads,
      interOpNumThreads: 1,
    },
  });
}

const loading = load();
loading.then(
  () =>
    port.postMessage({
      kind: 'ready',
      intraOpNumThreads: settings.threads,
      interOpNumThreads: 1,
    } satisfies ThreadReply),
  (err: unknown) =>
    port.postMessage({ kind: 'failed', message: (err as Error).message } satisfies ThreadReply),
);

port.on('message', (request: ThreadRequest) => {
  queue = queue.then(() => answer(request));
});

async function answer(request: ThreadRequest): Promise<void> {
  try {
    const extractor = await loading;
    const tokens = request.texts.map((t) => extractor.tokenizer.encode(t).length);
    // Refused before inference: the tokenizer would cut it at its own limit, silently.
    if (tokens.some((n) => n > settings.maxTokens)) {
      port?.postMessage({ kind: 'embedded', id: request.id, tokens } satisfies ThreadReply);
      return;
    }
    const output = await extractor(request.texts, { pooling: settings.pooling, normalize: true });
    const data = Float32Array.from(output.data as Float32Array);
    port?.postMessage(
      {
        kind: 'embedded',
        id: request.id,
        tokens,
        vectors: data,
        dimensions: output.dims[1] ?? 0,
      } satisfies ThreadReply,
      [data.buffer],
    );
  } catch (err) {
    port?.postMessage({
      kind: 'error',
      id: request.id,
      message: (err as Error).message,
    } satisfies ThreadReply);
  }
}
