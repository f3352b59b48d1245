import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';
/**
 * Byte-pair encoding of one pre-tokenized word, shared by the CLIP tokenizer (vocab.json + merges.txt)
 * and tokenizer.json's BPE model: start from characters, repeatedly join the adjacent pair with the
 * lowest merge rank, then look the pieces up. Byte-level vocabularies (CLIP, GPT-2) first map each UTF-8
 * byte to a printable character with bytesToUnicode, so every input is spellable.
 */

/** GPT-2/CLIP's reversible byte -> printable character map (printable Latin-1 bytes map to themselves). */
export function bytesToUnicode(): readonly string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) {
      table[b] = String.fromCharCode(256 + n);
      n += 1;
    }
  }
  return table;
}

const BYTE_CHARS = bytesToUnicode();
const encoder = new TextEncoder();

/** The byte-level spelling of `text`: its UTF-8 bytes as printable characters. */
export function byteLevel(text: string): string {
  let out = '';
  for (const byte of encoder.encode(text)) out += BYTE_CHARS[byte];
  return out;
}

export interface BpeOptions {
  /** Suffix glued to a word's last character before merging (CLIP: '</w>'). */
  readonly endOfWordSuffix?: string;
  /** Prefix of non-initial pieces in the vocabulary (WordPiece-style BPE: '##'). */
  readonly continuingSubwordPrefix?: string;
  /** Token for pieces the vocabulary lacks; without one such a piece is an error. */
  readonly unkToken?: string;
}

/** A piece the vocabulary cannot spell and no unknown token to stand for it. */
export class TokenizerError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'TokenizerError';
  constructor(readonly file: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${detail}`, options);
  }
}

export class BpeModel {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, readonly number[]>();

  constructor(
    readonly file: string,
    readonly vocab: ReadonlyMap<string, number>,
    merges: readonly (readonly [string, string])[],
    private readonly options: BpeOptions = {},
  ) {
    // Pairs are keyed with a space, which never occurs inside a byte-level or CLIP token.
    merges.forEach(([a, b], rank) => {
      if (!this.ranks.has(`${a} ${b}`)) this.ranks.set(`${a} ${b}`, rank);
    });
  }

  /** Token pieces of one word after all merges. */
  pieces(word: string): string[] {
    const chars = Array.from(word);
    if (chars.length === 0) return [];
    const suffix = this.options.endOfWordSuffix ?? '';
    let parts = chars.map((c, i) => (i === chars.length - 1 ? c + suffix : c));
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const rank = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) return parts;
      const a = parts[best]!;
      const b = parts[best + 1]!;
      // Merge every occurrence of the pair, left to right (as the reference implementations do).
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          next.push(a + b);
          i += 1;
        } else {
          next.push(parts[i]!);
        }
      }
      parts = next;
    }
  }

  /** Vocabulary ids of one word. */
  encodeWord(word: string): readonly number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const prefix = this.options.continuingSubwordPrefix ?? '';
    const ids = this.pieces(word).map((piece, i) => {
      const key = i > 0 ? prefix + piece : piece;
      const id = this.vocab.get(key);
      if (id !== undefined) return id;
      const unk = this.options.unkToken === undefined ? undefined : this.vocab.get(this.options.unkToken);
      if (unk === undefined) throw new TokenizerError(this.file, `piece '${key}' of '${word}' is not in the vocabulary and there is no unknown token`);
      return unk;
    });
    if (this.cache.size < 10_000) this.cache.set(word, ids);
    return ids;
  }
}

/** Parses merges.txt (first line '#version: ...' is skipped) or tokenizer.json's merges list. */
export function parseMerges(file: string, lines: readonly (string | readonly string[])[]): [string, string][] {
  const merges: [string, string][] = [];
  lines.forEach((line, i) => {
    if (typeof line === 'string') {
      if (line.startsWith('#version') || line.trim() === '') return;
      const parts = line.split(' ');
      if (parts.length !== 2) throw new TokenizerError(file, `merge ${i + 1} is not two space-separated tokens (it has ${parts.length})`);
      merges.push([parts[0]!, parts[1]!]);
    } else {
      if (line.length !== 2) throw new TokenizerError(file, `merge ${i + 1} is not a pair`);
      merges.push([line[0]!, line[1]!]);
    }
  });
  return merges;
}
