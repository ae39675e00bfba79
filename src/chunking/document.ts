// Chunking a row's document the one way the chunk stage and verify both use.
import type { PipelineConfig } from '../config/pipeline.js';
import { columnText } from './column.js';
import { splitText } from './split.js';
import { chunkOptions } from './tokens.js';

/**
 * A column pipeline's row is one text, whole (src/chunking/column.ts); a text too long for the model
 * is refused before it gets here, so it is sent as it is only if a caller did not check. Otherwise
 * splits a document in the model's unit, repeating the row's context (its repeated columns) at the
 * head of every chunk. A context longer than a quarter of the chunk size would crowd out the text
 * it is meant to label, so it is then left to the first chunk alone.
 */
export function chunkDocument(
  config: PipelineConfig,
  document: string,
  context: string | null,
): string[] {
  if (config.destination) {
    if (document.trim() === '') return [];
    const one = columnText(config, document);
    return ['text' in one ? one.text : document];
  }
  const options = chunkOptions(config);
  const measure = options.measure ?? ((text: string) => Array.from(text).length);
  const repeat = context && measure(`${context}\n`) * 4 <= options.size ? context : undefined;
  return splitText(document, repeat ? { ...options, context: repeat } : options);
}
