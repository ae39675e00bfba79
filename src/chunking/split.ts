// Recursive splitting: paragraphs, then lines, then sentences, then words, then characters,
// merging the pieces back into chunks no longer than `size`, each repeating up to `overlap`
// of the text before it so that no sentence loses its context at a boundary.

export interface ChunkOptions {
  size: number;
  overlap: number;
  /** Length of a piece of text in the unit `size` is measured in. Default: code points. */
  measure?: (text: string) => number;
  /**
   * The row's context (its title, say), repeated on its own line at the head of every chunk that
   * does not already start with it, so a chunk from the middle of a long text still says what it
   * is about. Counted against `size`.
   */
  context?: string;
}

const SEPARATORS = ['\n\n', '\n', '. ', ' ', ''] as const;

// Code points, not UTF-16 units: an emoji counts once.
const codePoints = (text: string): number => Array.from(text).length;

export function splitText(text: string, options: ChunkOptions): string[] {
  const measure = options.measure ?? codePoints;
  const { size, overlap, context } = options;
  if (overlap * 2 >= size) throw new Error('chunk overlap must be less than half the chunk size');
  if (text.trim() === '') return [];
  if (measure(text) <= size) return [text];
  if (context !== undefined && context.trim() !== '') {
    const head = `${context}\n`;
    const room = size - measure(head);
    if (overlap * 2 >= room)
      throw new Error(
        'the chunk context leaves too little room: it must be shorter than half the chunk size',
      );
    return splitText(text, { size: room, overlap, measure }).map((c) =>
      c.startsWith(context) ? c : head + c,
    );
  }
  const chunks = split(text, 0, { size, overlap, measure, context: '' })
    .map((c) => c.trim())
    .filter((c) => c !== '');
  return chunks.flatMap((c) => fit(c, { size, overlap, measure, context: '' }));
}

// Merging adds up the lengths of pieces. Code points add up exactly; tokens almost always come to
// less when joined, but a chunk that comes to more is split again, a little smaller, so that no
// chunk ever exceeds the size (and so the model's limit).
function fit(chunk: string, options: Required<ChunkOptions>, limit = options.size): string[] {
  if (options.measure(chunk) <= options.size) return [chunk];
  const size = Math.floor(limit * 0.9);
  if (size < 1) return [chunk];
  const smaller = { ...options, size, overlap: options.overlap * 2 < size ? options.overlap : 0 };
  return split(chunk, 0, smaller)
    .map((c) => c.trim())
    .filter((c) => c !== '')
    .flatMap((c) => fit(c, options, size));
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
