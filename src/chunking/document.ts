// Chunking a row's document the one way the chunk stage and verify both use.
import type { PipelineConfig } from '../config/pipeline.js';
import { splitText } from './split.js';
import { chunkOptions } from './tokens.js';

/**
 * Splits a document in the model's unit, repeating the row's context (its repeated columns) at the
 * head of every chunk. A context longer than a quarter of the chunk size would crowd out the text
 * it is meant to label, so it is then left to the first chunk alone.
 */
export function chunkDocument(
  config: PipelineConfig,
  document: string,
  context: string | null,
): string[] {
  const options = chunkOptions(config);
  const measure = options.measure ?? ((text: string) => Array.from(text).length);
  const repeat = context && measure(`${context}\n`) * 4 <= options.size ? context : undefined;
  return splitText(document, repeat ? { ...options, context: repeat } : options);
}
