// A column pipeline's one text per row (docs/architecture.md, decision 18): the whole document, never
// chunked. A document longer than the model takes is refused for that row, unless the pipeline asks
// for truncation, when it is cut to what the model takes and the cut is recorded.
import type { PipelineConfig } from '../config/pipeline.js';
import { modelFacts } from '../providers/models.js';
import { chunkMeasure } from './tokens.js';

export type ColumnText =
  { text: string; truncated: boolean } | { tooLong: { size: number; limit: number; unit: string } };

/** What a column pipeline sends for a document: all of it, cut to the limit, or nothing. */
export function columnText(
  config: Pick<PipelineConfig, 'embedding' | 'destination'>,
  document: string,
): ColumnText {
  const facts = modelFacts(config.embedding);
  const limit = facts.maxInputSize;
  if (!Number.isFinite(limit)) return { text: document, truncated: false };
  const measure = chunkMeasure(config.embedding) ?? countCodePoints;
  const size = measure(document);
  if (size <= limit) return { text: document, truncated: false };
  if (!config.destination?.truncate) return { tooLong: { size, limit, unit: facts.unit } };
  return { text: cut(document, limit, measure), truncated: true };
}

/** The message a too-long row's dead letter carries. */
export function tooLongMessage(
  pk: string,
  tooLong: { size: number; limit: number; unit: string },
): string {
  return (
    `row ${pk}: its text is ${tooLong.size} ${tooLong.unit}, longer than the model's limit of ` +
    `${tooLong.limit} ${tooLong.unit} per input; shorten it, or set destination.truncate: true ` +
    `to embed its first ${tooLong.limit} ${tooLong.unit}`
  );
}

const countCodePoints = (text: string): number => Array.from(text).length;

/** The longest prefix (in code points) that measures at most `limit`: a binary search. */
function cut(text: string, limit: number, measure: (text: string) => number): string {
  const points = Array.from(text);
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(points.slice(0, mid).join('')) <= limit) lo = mid;
    else hi = mid - 1;
  }
  return points.slice(0, lo).join('');
}
