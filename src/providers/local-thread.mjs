// The thread a local model runs on (src/providers/local-runtime.ts starts it). Tokenising, ONNX
// inference and pooling all block the thread they run on, for seconds while the model loads and a
// fraction of a second a batch; here they block this thread, never the worker's event loop, which
// keeps its workflows and heartbeats moving. Requests are answered one at a time, in order.
//
// Plain JavaScript: a worker thread does not inherit the TypeScript loader the commands register,
// and Node strips types by itself only from 22.18. The messages are typed in local-runtime.ts.
import { parentPort, workerData } from 'node:worker_threads';

/** @type {import('./local-runtime.ts').ThreadSettings} */
const settings = workerData;
const port = parentPort;
if (!port) throw new Error('local-thread.mjs runs as a worker thread only');

const { env, pipeline } = await import('@huggingface/transformers');
// Files from the model's directory only: a missing file is an error, never a download.
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = settings.modelsDir;

const loading = pipeline('feature-extraction', settings.name, {
  dtype: settings.dtype,
  device: 'cpu',
  local_files_only: true,
  session_options: { intraOpNumThreads: settings.threads, interOpNumThreads: 1 },
});
loading.then(
  () =>
    port.postMessage({ kind: 'ready', intraOpNumThreads: settings.threads, interOpNumThreads: 1 }),
  (err) => port.postMessage({ kind: 'failed', message: String(err?.message ?? err) }),
);

let queue = Promise.resolve();
port.on('message', (request) => {
  queue = queue.then(() => answer(request));
});

/** @param {import('./local-runtime.ts').ThreadRequest} request */
async function answer(request) {
  try {
    const extractor = await loading;
    const tokens = request.texts.map((t) => extractor.tokenizer.encode(t).length);
    // Refused before inference: the tokenizer would cut it at its own limit, silently.
    if (tokens.some((n) => n > settings.maxTokens)) {
      port.postMessage({ kind: 'embedded', id: request.id, tokens });
      return;
    }
    const output = await extractor(request.texts, { pooling: settings.pooling, normalize: true });
    const vectors = Float32Array.from(output.data);
    port.postMessage(
      { kind: 'embedded', id: request.id, tokens, vectors, dimensions: output.dims[1] ?? 0 },
      [vectors.buffer],
    );
  } catch (err) {
    port.postMessage({ kind: 'error', id: request.id, message: String(err?.message ?? err) });
  }
}
