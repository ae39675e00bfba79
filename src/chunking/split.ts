// Recursive splitting: paragraphs, then lines, then sentences, then words, then characters,
// merging the pieces back into chunks no longer than `size`, each repeating up to `overlap`
// of the text before it so that no sentence loses its context at a boundary.

export interface ChunkOptions {
  size: number;
  overlap: number;
  /** Length of a piece of text in the unit `size` is measured in. Default: code points. */
  measure?: (text: string) => number;
}

const SEPARATORS = ['\n\n', '\n', '. ', ' ', ''] as const;

// Code points, not UTF-16 units: an emoji counts once.
const codePoints = (text: string): number => Array.from(text).length;

export function splitText(text: string, options: ChunkOptions): string[] {
  const measure = options.measure ?? codePoints;
  if (options.overlap * 2 >= options.size) throw new Error('chunk overlap must be less than half the chunk size');
  if (text.trim() === '') return [];
  if (measure(text) <= options.size) return [text];
  return split(text, 0, { ...options, measure }).map((c) => c.trim()).filter((c) => c !== '');
}

function split(text: string, level: number, options: Required<ChunkOptions>): string[] {
  const separator = SEPARATORS[level] ?? '';
  // '' splits into code points, never between the halves of a surrogate pair
  const pieces = separator === '' ? Array.from(text) : text.split(separator);
  const sized: string[] = [];
  for (const piece of pieces) {
    if (options.measure(piece) <= options.size || separator === '') sized.push(piece);
    else sized.push(...split(piece, level + 1, options));
  }
  return merge(sized, separator, options);
}

function merge(pieces: string[], separator: string, options: Required<ChunkOptions>): string[] {
  const { size, overlap, measure } = options;
  const sepLength = measure(separator);
  const chunks: string[] = [];
  const window: string[] = [];
  let length = 0;
  for (const piece of pieces) {
    const pieceLength = measure(piece);
    const added = window.length > 0 ? sepLength + pieceLength : pieceLength;
    if (length + added > size && window.length > 0) {
      chunks.push(window.join(separator));
      // Keep the tail of the window as the next chunk's overlap.
      while (window.length > 0 && (length > overlap || length + sepLength + pieceLength > size)) {
        const first = window.shift() ?? '';
        length -= measure(first) + (window.length > 0 ? sepLength : 0);
      }
    }
    length += window.length > 0 ? sepLength + pieceLength : pieceLength;
    window.push(piece);
  }
  if (window.length > 0) chunks.push(window.join(separator));
  return chunks;
}
