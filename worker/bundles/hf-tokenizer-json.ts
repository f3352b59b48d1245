/**
 * Hugging Face `tokenizer.json` (the `tokenizers` library's serialized pipeline) for the parts prompt
 * encoders use: added tokens, normalizers (NFC/NFD/NFKC/NFKD, Lowercase, Strip, Replace, Sequence),
 * pre-tokenizers (Whitespace, WhitespaceSplit, ByteLevel, Split, Sequence), WordLevel and BPE models,
 * post-processors (TemplateProcessing, RobertaProcessing, BertProcessing), truncation and padding.
 * Anything else is refused with the component named, rather than tokenized differently from Python.
 */
import { BpeModel, TokenizerError, byteLevel, parseMerges } from './bpe.js';
import type { Tokenizer } from './prompt-tokenizer.js';

type Json = Record<string, unknown>;
type Normalize = (text: string) => string;
type PreTokenize = (pieces: string[]) => string[];

const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function obj(value: unknown): Json | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : null;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A Split/Replace pattern: {"String": s} or {"Regex": r}. */
function pattern(file: string, value: unknown): RegExp {
  const p = obj(value);
  if (p && typeof p.String === 'string') return new RegExp(escapeRegex(p.String), 'gu');
  if (p && typeof p.Regex === 'string') {
    try {
      return new RegExp(p.Regex, 'gu');
    } catch (error) {
      // Not the pattern, nor the engine's message (which quotes it): the file's text stays in the file.
      throw new TokenizerError(file, `a Regex pattern (${p.Regex.length} characters) is not valid in JavaScript`, { cause: error });
    }
  }
  throw new TokenizerError(file, 'a pattern is neither {"String"} nor {"Regex"}');
}

function normalizer(file: string, spec: unknown): Normalize {
  const n = obj(spec);
  if (n === null) return (t) => t;
  switch (n.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = n.type;
      return (t) => t.normalize(form);
    }
    case 'Lowercase':
      return (t) => t.toLowerCase();
    case 'Strip':
      return (t) => {
        const left = n.left === false ? t : t.trimStart();
        return n.right === false ? left : left.trimEnd();
      };
    case 'Replace': {
      const re = pattern(file, n.pattern);
      const content = typeof n.content === 'string' ? n.content : '';
      return (t) => t.replace(re, () => content);
    }
    case 'Sequence': {
      const steps = (Array.isArray(n.normalizers) ? n.normalizers : []).map((s) => normalizer(file, s));
      return (t) => steps.reduce((acc, f) => f(acc), t);
    }
    default:
      throw new TokenizerError(file, `normalizer '${String(n.type)}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Sequence)`);
  }
}

function splitBy(re: RegExp, behavior: unknown, invert: boolean): PreTokenize {
  return (pieces) => pieces.flatMap((piece) => {
    const out: string[] = [];
    let last = 0;
    for (const m of piece.matchAll(re)) {
      const index = m.index ?? 0;
      if (invert) {
        // The pattern describes the tokens themselves (CLIP's tokenizer.json does this).
        if (m[0].length > 0) out.push(m[0]);
        continue;
      }
      if (index > last) out.push(piece.slice(last, index));
      if (behavior === 'Isolated' && m[0].length > 0) out.push(m[0]);
      else if (behavior === 'MergedWithPrevious' && m[0].length > 0) {
        if (out.length > 0 && index === last) out[out.length - 1] += m[0];
        else out.push(m[0]);
      }
      last = index + m[0].length;
    }
    if (!invert && last < piece.length) out.push(piece.slice(last));
    return out;
  });
}

function preTokenizer(file: string, spec: unknown): PreTokenize {
  const p = obj(spec);
  if (p === null) return (pieces) => pieces;
  switch (p.type) {
    case 'Whitespace':
      return splitBy(/\w+|[^\w\s]+/gu, 'Removed', true);
    case 'WhitespaceSplit':
      return (pieces) => pieces.flatMap((piece) => piece.split(/\s+/u).filter((s) => s.length > 0));
    case 'ByteLevel': {
      const prefix = p.add_prefix_space === true;
      const useRegex = p.use_regex !== false;
      return (pieces) => pieces.flatMap((piece) => {
        const text = prefix && !piece.startsWith(' ') ? ` ${piece}` : piece;
        const parts = useRegex ? Array.from(text.matchAll(GPT2_PATTERN), (m) => m[0]) : [text];
        return parts.map(byteLevel);
      });
    }
    case 'Split': {
      if (!['Removed', 'Isolated', 'MergedWithPrevious'].includes(String(p.behavior))) {
        throw new TokenizerError(file, `Split behavior '${String(p.behavior)}' is not supported (Removed, Isolated, MergedWithPrevious)`);
      }
      return splitBy(pattern(file, p.pattern), p.behavior, p.invert === true);
    }
    case 'Sequence': {
      const steps = (Array.isArray(p.pretokenizers) ? p.pretokenizers : []).map((s) => preTokenizer(file, s));
      return (pieces) => steps.reduce((acc, f) => f(acc), pieces);
    }
    default:
      throw new TokenizerError(file, `pre_tokenizer '${String(p.type)}' is not supported (supported: Whitespace, WhitespaceSplit, ByteLevel, Split, Sequence)`);
  }
}

function vocabMap(file: string, value: unknown): Map<string, number> {
  const v = obj(value);
  if (v === null) throw new TokenizerError(file, 'model.vocab is not an object of token -> id');
  const map = new Map<string, number>();
  for (const [token, id] of Object.entries(v)) {
    if (!Number.isInteger(id)) throw new TokenizerError(file, `model.vocab['${token}'] is ${JSON.stringify(id)}, not an integer id`);
    map.set(token, id as number);
  }
  return map;
}

type WordModel = { encode(word: string): readonly number[]; vocab: ReadonlyMap<string, number> };

function model(file: string, spec: unknown): WordModel {
  const m = obj(spec);
  if (m === null) throw new TokenizerError(file, 'has no model');
  const vocab = vocabMap(file, m.vocab);
  const unkToken = typeof m.unk_token === 'string' ? m.unk_token : undefined;
  switch (m.type) {
    case 'WordLevel':
      return {
        vocab,
        encode(word) {
          const id = vocab.get(word) ?? (unkToken === undefined ? undefined : vocab.get(unkToken));
          if (id === undefined) throw new TokenizerError(file, `word '${word}' is not in the WordLevel vocabulary and there is no unk_token`);
          return [id];
        },
      };
    case 'BPE': {
      const merges = parseMerges(file, Array.isArray(m.merges) ? (m.merges as (string | string[])[]) : []);
      const bpe = new BpeModel(file, vocab, merges, {
        ...(typeof m.end_of_word_suffix === 'string' ? { endOfWordSuffix: m.end_of_word_suffix } : {}),
        ...(typeof m.continuing_subword_prefix === 'string' ? { continuingSubwordPrefix: m.continuing_subword_prefix } : {}),
        ...(unkToken !== undefined ? { unkToken } : {}),
      });
      return { vocab, encode: (word) => bpe.encodeWord(word) };
    }
    default:
      throw new TokenizerError(file, `model type '${String(m.type)}' is not supported (supported: WordLevel, BPE)`);
  }
}

/** Ids placed before and after the sequence by the post-processor. */
function specials(file: string, spec: unknown, vocab: ReadonlyMap<string, number>): { before: number[]; after: number[] } {
  const p = obj(spec);
  if (p === null) return { before: [], after: [] };
  const pairId = (value: unknown, what: string): number => {
    if (Array.isArray(value) && Number.isInteger(value[1])) return value[1] as number;
    throw new TokenizerError(file, `post_processor.${what} is not [token, id]`);
  };
  switch (p.type) {
    case 'RobertaProcessing':
    case 'BertProcessing':
      return { before: [pairId(p.cls, 'cls')], after: [pairId(p.sep, 'sep')] };
    case 'TemplateProcessing': {
      const table = obj(p.special_tokens) ?? {};
      const before: number[] = [];
      const after: number[] = [];
      let seen = false;
      for (const item of Array.isArray(p.single) ? p.single : []) {
        const entry = obj(item) ?? {};
        if (obj(entry.Sequence)) {
          seen = true;
          continue;
        }
        const special = obj(entry.SpecialToken);
        const name = typeof special?.id === 'string' ? special.id : undefined;
        const declared = name === undefined ? undefined : obj(table[name]);
        const ids = Array.isArray(declared?.ids) ? (declared.ids as number[]) : name !== undefined && vocab.has(name) ? [vocab.get(name)!] : null;
        if (ids === null) throw new TokenizerError(file, `post_processor template token ${JSON.stringify(name)} has no id`);
        (seen ? after : before).push(...ids);
      }
      return { before, after };
    }
    case 'ByteLevel':
      return { before: [], after: [] };
    default:
      throw new TokenizerError(file, `post_processor '${String(p.type)}' is not supported (supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel)`);
  }
}

export class HfJsonTokenizer implements Tokenizer {
  private constructor(
    readonly length: number,
    readonly padId: number,
    private readonly split: (text: string) => { text: string; id: number | null }[],
    private readonly normalize: Normalize,
    private readonly preTokenize: PreTokenize,
    private readonly model: WordModel,
    private readonly before: readonly number[],
    private readonly after: readonly number[],
  ) {}

  /**
   * `fallbackLength` applies when the file fixes no padding length (padding null or BatchLongest): the
   * text encoder's input length, since its graph wants a full row.
   */
  static fromJson(file: string, json: Json, fallbackLength: number): HfJsonTokenizer {
    const word = model(file, json.model);
    const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []).map((t) => obj(t) ?? {}).filter((t) => typeof t.content === 'string' && Number.isInteger(t.id)) as { content: string; id: number }[];
    const addedRe = added.length === 0 ? null : new RegExp(added.map((t) => escapeRegex(t.content)).sort((a, b) => b.length - a.length).join('|'), 'gu');
    const addedIds = new Map(added.map((t) => [t.content, t.id]));
    const split = (text: string) => {
      if (addedRe === null) return [{ text, id: null }];
      const parts: { text: string; id: number | null }[] = [];
      let last = 0;
      for (const m of text.matchAll(addedRe)) {
        if (m.index! > last) parts.push({ text: text.slice(last, m.index), id: null });
        parts.push({ text: m[0], id: addedIds.get(m[0])! });
        last = m.index! + m[0].length;
      }
      if (last < text.length) parts.push({ text: text.slice(last), id: null });
      return parts;
    };
    const { before, after } = specials(file, json.post_processor, word.vocab);
    const padding = obj(json.padding);
    const truncation = obj(json.truncation);
    const strategy = obj(padding?.strategy);
    const fixed = typeof strategy?.Fixed === 'number' ? strategy.Fixed : null;
    const maxLength = typeof truncation?.max_length === 'number' ? truncation.max_length : null;
    const length = fixed ?? maxLength ?? fallbackLength;
    if (length < before.length + after.length) throw new TokenizerError(file, `sequence length ${length} leaves no room for the special tokens`);
    let padId = typeof padding?.pad_id === 'number' ? padding.pad_id : null;
    if (padId === null && typeof padding?.pad_token === 'string') padId = word.vocab.get(padding.pad_token) ?? null;
    // With no padding section, pad with the end token when there is one (CLIP-style), else id 0.
    padId ??= after.at(-1) ?? 0;
    return new HfJsonTokenizer(length, padId, split, normalizer(file, json.normalizer), preTokenizer(file, json.pre_tokenizer), word, before, after);
  }

  tokens(text: string): number[] {
    const ids: number[] = [];
    for (const part of this.split(text)) {
      if (part.id !== null) {
        ids.push(part.id);
        continue;
      }
      for (const piece of this.preTokenize([this.normalize(part.text)])) ids.push(...this.model.encode(piece));
    }
    return ids;
  }

  count(text: string): number {
    const room = this.length - this.before.length - this.after.length;
    return this.before.length + Math.min(room, this.tokens(text).length) + this.after.length;
  }

  encode(text: string): Int32Array {
    const room = this.length - this.before.length - this.after.length;
    const row = [...this.before, ...this.tokens(text).slice(0, room), ...this.after];
    const out = new Int32Array(this.length).fill(this.padId);
    out.set(row);
    return out;
  }
}
