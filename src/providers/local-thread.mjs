// The thread a local model runs on (src/providers/local-runtime.ts starts it). Tokenising, ONNX
// inference and pooling all block the thread they run on, for seconds while the model loads and a
// fraction of a second a batch; here they block this thread, never the event loop of the worker or
// the search, which keeps its workflows and heartbeats moving. Requests are answered one at a time,
// in order. A sentence-embedding model embeds texts; a cross-encoder scores (query, document) pairs.
//
// Plain JavaScript: a worker thread does not inherit the TypeScript loader the commands register,
// and Node strips types by itself only from 22.18. The messages are typed in local-runtime.ts.
import { parentPort, workerData } from 'node:worker_threads';

/** @type {import('./local-runtime.ts').ThreadSettings} */
const settings = workerData;
const port = parentPort;
if (!port) throw new Error('local-thread.mjs runs as a worker thread only');

const { env, pipeline, AutoTokenizer, AutoModelForSequenceClassification, Tensor } =
  await import('@huggingface/transformers');
// Files from the model's directory only: a missing file is an error, never a download.
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = settings.modelsDir;

const session = {
  dtype: settings.dtype,
  device: 'cpu',
  local_files_only: true,
  session_options: { intraOpNumThreads: settings.threads, interOpNumThreads: 1 },
};

// Pairs scored in one inference: a batch is padded to its longest pair, so a few long documents
// do not make every short one pay for their length.
const SCORE_BATCH = 16;

const loading =
  settings.task === 'score'
    ? Promise.all([
        AutoTokenizer.from_pretrained(settings.name, { local_files_only: true }),
        // The files carry no config.json: the table says which architecture wraps the weights.
        AutoModelForSequenceClassification.from_pretrained(settings.name, {
          ...session,
          config: { model_type: settings.modelType, num_labels: 1 },
        }),
      ]).then(([tokenizer, model]) => ({ tokenizer, model }))
    : pipeline('feature-extraction', settings.name, session).then((extractor) => ({ extractor }));
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
    const loaded = await loading;
    if ('texts' in request) {
      if (!loaded.extractor) throw new Error(`${settings.name} is a cross-encoder: it scores`);
      await embed(loaded.extractor, request);
    } else {
      if (!loaded.model) throw new Error(`${settings.name} embeds: it does not score pairs`);
      await score(loaded, request);
    }
  } catch (err) {
    port.postMessage({ kind: 'error', id: request.id, message: String(err?.message ?? err) });
  }
}

async function embed(extractor, request) {
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
}

async function score({ tokenizer, model }, request) {
  const { query, documents } = request;
  const q = tokenizer.encode(query, { add_special_tokens: false });
  const pairs = documents.map((d) =>
    pairOf(tokenizer, q, tokenizer.encode(d, { add_special_tokens: false })),
  );
  const scores = new Float32Array(documents.length);
  for (let at = 0; at < pairs.length; at += SCORE_BATCH) {
    const { logits } = await model(
      batchOf(pairs.slice(at, at + SCORE_BATCH), tokenizer.pad_token_id),
    );
    // One logit per pair (num_labels 1).
    scores.set(logits.data, at);
  }
  const tokens = pairs.map((p) => p.tokens);
  port.postMessage({ kind: 'scored', id: request.id, tokens, scores }, [scores.buffer]);
}

/**
 * A BERT pair, [CLS] query [SEP] document [SEP], the query's tokens of type 0 and the document's
 * of type 1, as the model was trained. A pair longer than the model takes is cut as Hugging Face's
 * tokenizers cut one (longest first): a token at a time from the end of the longer side, so the
 * document's beginning is what is scored and both [SEP]s stay. (transformers.js's own truncation
 * would cut the pair's last tokens, the closing [SEP] with them.)
 */
function pairOf(tokenizer, q, d) {
  let qn = q.length;
  let dn = d.length;
  for (let excess = qn + dn + 3 - settings.maxTokens; excess > 0; excess -= 1) {
    if (dn >= qn) dn -= 1;
    else qn -= 1;
  }
  const cls = tokenizer.convert_tokens_to_ids(tokenizer.config.cls_token ?? '[CLS]');
  const sep = tokenizer.sep_token_id;
  const ids = [cls, ...q.slice(0, qn), sep, ...d.slice(0, dn), sep];
  return { ids, first: qn + 2, tokens: q.length + d.length + 3 };
}

/** The pairs as one padded batch: ids, attention mask and token types, int64 as BERT takes. */
function batchOf(pairs, pad) {
  const width = Math.max(...pairs.map((p) => p.ids.length));
  const ids = new BigInt64Array(pairs.length * width).fill(BigInt(pad));
  const mask = new BigInt64Array(pairs.length * width);
  const types = new BigInt64Array(pairs.length * width);
  pairs.forEach((p, row) => {
    p.ids.forEach((id, i) => {
      ids[row * width + i] = BigInt(id);
      mask[row * width + i] = 1n;
      types[row * width + i] = i < p.first ? 0n : 1n;
    });
  });
  const dims = [pairs.length, width];
  return {
    input_ids: new Tensor('int64', ids, dims),
    attention_mask: new Tensor('int64', mask, dims),
    token_type_ids: new Tensor('int64', types, dims),
  };
}
