// The InvokeModel bodies of Bedrock's embedding models, and their answers. Each family has its own.
//   Titan v2:  { inputText, dimensions, normalize }            → { embedding, inputTextTokenCount }
//   Titan v1:  { inputText }                                   → { embedding, inputTextTokenCount }
//   Cohere v3: { texts (≤ 96), input_type, truncate }          → { embeddings: [[…]] }
//   Cohere v4: { texts, input_type, embedding_types, output_dimension, truncate } → { embeddings: { float: [[…]] } }
import type { ModelFacts } from './models.js';
import type { InputType } from './types.js';

export interface BodyOptions {
  dimensions: number;
  inputType: InputType;
  normalize: boolean | undefined;
}

const cohereInputType = (t: InputType): string =>
  t === 'query' ? 'search_query' : 'search_document';

/** The bodies for these texts: one per text for Titan, one for all of them for Cohere. */
export function requestBodies(
  facts: ModelFacts,
  texts: readonly string[],
  options: BodyOptions,
): Record<string, unknown>[] {
  switch (facts.family) {
    case 'titan-v2':
      return texts.map((inputText) => ({
        inputText,
        dimensions: options.dimensions,
        normalize: options.normalize ?? true,
      }));
    case 'titan-v1':
      return texts.map((inputText) => ({ inputText }));
    case 'cohere-v3':
      // NONE: an input over the model's limit is an error, never silently cut.
      return [{ texts, input_type: cohereInputType(options.inputType), truncate: 'NONE' }];
    case 'cohere-v4':
      return [
        {
          texts,
          input_type: cohereInputType(options.inputType),
          embedding_types: ['float'],
          output_dimension: options.dimensions,
          truncate: 'NONE',
        },
      ];
    default:
      throw new Error(`${facts.model} is not a Bedrock model`);
  }
}

export interface ParsedResponse {
  vectors: number[][];
  /** Counted by the model where it says (Titan); otherwise undefined. */
  tokens: number | undefined;
}

const isVectorList = (v: unknown): v is number[][] =>
  Array.isArray(v) && v.every((x) => Array.isArray(x));

export class MalformedResponseError extends Error {
  override name = 'MalformedResponseError';
}

export function parseResponse(facts: ModelFacts, json: unknown): ParsedResponse {
  const body = (json ?? {}) as Record<string, unknown>;
  if (facts.family === 'titan-v2' || facts.family === 'titan-v1') {
    if (!Array.isArray(body.embedding))
      throw new MalformedResponseError(`${facts.model} answered without an embedding`);
    const tokens =
      typeof body.inputTextTokenCount === 'number' ? body.inputTextTokenCount : undefined;
    return { vectors: [body.embedding as number[]], tokens };
  }
  // Cohere answers with a list of vectors, or (when embedding_types is sent) a list per type.
  const embeddings = body.embeddings;
  const floats = isVectorList(embeddings)
    ? embeddings
    : (embeddings as Record<string, unknown> | undefined)?.float;
  if (!isVectorList(floats))
    throw new MalformedResponseError(`${facts.model} answered without float embeddings`);
  return { vectors: floats, tokens: undefined };
}
