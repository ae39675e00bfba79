// Token counts in cl100k_base, the tokenizer of OpenAI's embedding models, and how chunks of a
// pipeline are measured: in its model's tokens where the tokenizer is public, characters otherwise.
//
// The ranks are js-tiktoken's; the merge is tiktoken's own algorithm (after each merge only the two
// neighbouring pairs are looked up again). js-tiktoken's merge rebuilds every pair's key on every
// step, which takes seconds for one paragraph of Japanese, whose letters form a single pre-token.
import cl100kBase from 'js-tiktoken/ranks/cl100k_base';
import type { EmbeddingConfig } from '../config/pipeline.js';
import { modelFacts } from '../providers/models.js';

interface Encoding {
  pattern: RegExp;
  ranks: Map<string, number>;
}
let encoding: Encoding | undefined;

// Keys are the token's bytes as a latin1 string. Loading takes a few hundred milliseconds, so only
// workers of token-measured pipelines pay for it.
function cl100k(): Encoding {
  if (!encoding) {
    const ranks = new Map<string, number>();
    for (const line of cl100kBase.bpe_ranks.split('\n')) {
      const [, offset, ...tokens] = line.split(' ');
      if (offset === undefined) continue;
      tokens.forEach((token, i) =>
        ranks.set(Buffer.from(token, 'base64').toString('latin1'), Number(offset) + i),
      );
    }
    encoding = { pattern: new RegExp(cl100kBase.pat_str, 'gu'), ranks };
  }
  return encoding;
}

/** How many tokens byte-pair merging makes of one pre-token (its UTF-8 bytes as latin1). */
function mergedLength(bytes: string, ranks: Map<string, number>): number {
  if (ranks.has(bytes)) return 1;
  // starts[i] is where part i begins; pair[i] is the rank of parts i and i+1 joined.
  const starts = Array.from({ length: bytes.length + 1 }, (_, i) => i);
  const rankOf = (i: number): number => {
    const end = starts[i + 2];
    return end === undefined ? Infinity : (ranks.get(bytes.slice(starts[i], end)) ?? Infinity);
  };
  const pair = starts.slice(0, -1).map((_, i) => rankOf(i));
  for (;;) {
    let best = Infinity;
    let at = -1;
    for (let i = 0; i < pair.length - 1; i += 1) {
      const r = pair[i] ?? Infinity;
      if (r < best) {
        best = r;
        at = i;
      }
    }
    if (at < 0) break;
    starts.splice(at + 1, 1);
    pair.splice(at + 1, 1);
    pair[at] = rankOf(at);
    if (at > 0) pair[at - 1] = rankOf(at - 1);
  }
  return starts.length - 1;
}

// Merging is quadratic in the length of one pre-token, and a pre-token can be a whole run of
// letters (a paragraph of Japanese, a megabyte of x). Runs this long are counted in pieces, which
// can only add a token at each cut: chunks err on the short side.
const LONG_RUN = /\S{65,}|\s{65,}/gu;
const PIECE = 64;

const pieceCache = new Map<string, number>();

function countPretokens(text: string, enc: Encoding): number {
  let total = 0;
  for (const [piece] of text.matchAll(enc.pattern)) {
    let n = pieceCache.get(piece);
    if (n === undefined) {
      n = mergedLength(Buffer.from(piece, 'utf8').toString('latin1'), enc.ranks);
      if (pieceCache.size > 50_000) pieceCache.clear();
      pieceCache.set(piece, n);
    }
    total += n;
  }
  return total;
}

/**
 * The number of cl100k tokens in text; special tokens such as <|endoftext|> count as plain text.
 */
export function countTokens(text: string): number {
  // A row's text is counted when it is chunked and again when its chunk (most often the same
  // string) is sent: the last answer is kept.
  if (lastCounted?.text === text) return lastCounted.tokens;
  const tokens = countAll(text);
  lastCounted = { text, tokens };
  return tokens;
}

let lastCounted: { text: string; tokens: number } | undefined;

function countAll(text: string): number {
  const enc = cl100k();
  let total = 0;
  let last = 0;
  for (const match of text.matchAll(LONG_RUN)) {
    total += countPretokens(text.slice(last, match.index), enc);
    const run = Array.from(match[0]);
    for (let i = 0; i < run.length; i += PIECE)
      total += countPretokens(run.slice(i, i + PIECE).join(''), enc);
    last = match.index + match[0].length;
  }
  return total + countPretokens(text.slice(last), enc);
}

/** Code points, the unit of models measured in characters. */
export const countCharacters = (text: string): number => Array.from(text).length;

/** How a pipeline's chunks are measured; undefined means characters, the splitter's default. */
export function chunkMeasure(embedding: EmbeddingConfig): ((text: string) => number) | undefined {
  return modelFacts(embedding).unit === 'tokens' ? countTokens : undefined;
}

/**
 * Tokens a text will count against the tokens-per-minute budget. Where the tokenizer is not public
 * the estimate is one token per three characters: generous, so non-English text does not overrun
 * it.
 */
export function estimateTokens(embedding: EmbeddingConfig, text: string): number {
  return modelFacts(embedding).unit === 'tokens'
    ? countTokens(text)
    : Math.ceil(countCharacters(text) / 3);
}

/** The splitter's options for a pipeline: its chunking, measured in its model's unit. */
export function chunkOptions(config: {
  embedding: EmbeddingConfig;
  chunking: { size: number; overlap: number };
}): { size: number; overlap: number; measure?: (text: string) => number } {
  return { ...config.chunking, measure: chunkMeasure(config.embedding) };
}
