/**
 * Prompt tokenizers for text encoders: the CLIP byte-level BPE that Stable Diffusion bundles ship as
 * vocab.json + merges.txt (+ special_tokens_map.json, tokenizer_config.json), and Hugging Face
 * tokenizer.json (hf-tokenizer-json.ts). Both give a fixed-length row of ids: start token, the prompt's
 * tokens (truncated), end token, then padding, as the text encoder's input_ids expect.
 */
import { readFile } from 'node:fs/promises';
import { BpeModel, TokenizerError, byteLevel, parseMerges } from './bpe.js';
import type { TokenizerFiles } from './bundle-manifest.js';
import { HfJsonTokenizer } from './hf-tokenizer-json.js';
import { parseJsonText } from './json-text.js';
import type { Tokenizer } from './prompt-tokenizer.js';

export { TokenizerError } from './bpe.js';
export type { Tokenizer } from './prompt-tokenizer.js';

/** Tokens CLIP's pre-tokenizer keeps together: specials, English contractions, letter runs, single digits, symbol runs. */
const CLIP_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/**
 * CLIPTokenizer's text cleanup as transformers runs it without ftfy (the usual install, and what
 * diffusers' pipelines then do): NFC, control characters dropped, whitespace runs become one space,
 * the ends are trimmed, everything is lowercased. No HTML unescaping: transformers does not do it.
 */
export function clipCleanText(text: string): string {
  return text.normalize('NFC').replace(/[\p{Cc}\p{Cf}]/gu, (c) => (/\s/u.test(c) ? ' ' : '')).replace(/\s+/gu, ' ').trim().toLowerCase();
}

export interface ClipBpeSpec {
  readonly file: string;
  readonly vocab: Readonly<Record<string, number>>;
  readonly merges: readonly (readonly [string, string])[];
  readonly length: number;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly padToken: string;
}

/** CLIPTokenizer: byte-level BPE with '</w>' word ends, lowercased, start/end tokens, fixed length. */
export class ClipBpeTokenizer implements Tokenizer {
  readonly length: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  private readonly bpe: BpeModel;
  private readonly vocab: Map<string, number>;

  constructor(spec: ClipBpeSpec) {
    this.vocab = new Map(Object.entries(spec.vocab));
    const id = (what: string, token: string): number => {
      const found = this.vocab.get(token);
      if (found === undefined) throw new TokenizerError(spec.file, `${what} token '${token}' is not in vocab.json`);
      return found;
    };
    if (!Number.isInteger(spec.length) || spec.length < 2) throw new TokenizerError(spec.file, `sequence length ${spec.length} leaves no room for start and end tokens`);
    this.length = spec.length;
    this.bosId = id('start', spec.bosToken);
    this.eosId = id('end', spec.eosToken);
    this.padId = id('pad', spec.padToken);
    this.bpe = new BpeModel(spec.file, this.vocab, spec.merges, { endOfWordSuffix: '</w>' });
  }

  /** The prompt's token ids, without start/end/padding. */
  tokens(text: string): number[] {
    const ids: number[] = [];
    for (const match of clipCleanText(text).matchAll(CLIP_PATTERN)) {
      const piece = match[0];
      const special = piece === '<|startoftext|>' || piece === '<|endoftext|>' ? this.vocab.get(piece) : undefined;
      if (special !== undefined) ids.push(special);
      else ids.push(...this.bpe.encodeWord(byteLevel(piece)));
    }
    return ids;
  }

  encode(text: string): Int32Array {
    const body = this.tokens(text).slice(0, this.length - 2);
    const out = new Int32Array(this.length).fill(this.padId);
    out[0] = this.bosId;
    out.set(body, 1);
    out[body.length + 1] = this.eosId;
    return out;
  }

  count(text: string): number {
    return Math.min(this.length, this.tokens(text).length + 2);
  }

  /** The token string of an id (tests and debugging). */
  token(id: number): string | undefined {
    for (const [token, value] of this.vocab) if (value === id) return token;
    return undefined;
  }
}

/** A special-token entry as transformers writes it: a string or {"content": ...}. */
function specialContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TokenizerError(file, 'cannot be read', { cause: error });
  }
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (error) {
    throw new TokenizerError(file, `is not a JSON object: ${(error as Error).message}`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TokenizerError(file, 'is not a JSON object: JSON of another kind');
  return value as Record<string, unknown>;
}

/**
 * The sequence length to tokenize to: the text encoder's fixed input length when the graph fixes it,
 * else the tokenizer's model_max_length when it is a real limit (transformers writes 1e30 for "none"),
 * else CLIP's 77.
 */
export function sequenceLength(encoderLength: number | null, modelMaxLength: unknown): number {
  if (encoderLength !== null) return encoderLength;
  if (typeof modelMaxLength === 'number' && Number.isInteger(modelMaxLength) && modelMaxLength > 1 && modelMaxLength < 100_000) return modelMaxLength;
  return 77;
}

/**
 * Loads the tokenizer a bundle ships. `encoderLength` is the text encoder's fixed input_ids length
 * (null when symbolic). Pad token precedence follows transformers: special_tokens_map.json over
 * tokenizer_config.json (SD 2.x relies on it: "!" over "<|endoftext|>"), then the end token.
 */
export async function loadTokenizer(files: TokenizerFiles, encoderLength: number | null): Promise<Tokenizer> {
  if (files.kind === 'tokenizer-json') {
    const json = await readJson(files.tokenizerJson);
    const config = files.tokenizerConfig ? await readJson(files.tokenizerConfig) : {};
    return HfJsonTokenizer.fromJson(files.tokenizerJson, json, sequenceLength(encoderLength, config.model_max_length));
  }
  const vocab = await readJson(files.vocab);
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id)) throw new TokenizerError(files.vocab, `token '${token}' maps to ${JSON.stringify(id)}, not an integer id`);
  }
  const mergesText = await readFile(files.merges, 'utf8').catch((error: unknown) => {
    throw new TokenizerError(files.merges, 'cannot be read', { cause: error });
  });
  const merges = parseMerges(files.merges, mergesText.split('\n'));
  const special = await readJson(files.specialTokensMap);
  const config = await readJson(files.tokenizerConfig);
  const pick = (key: string, fallback: string): string => specialContent(special[key]) ?? specialContent(config[key]) ?? fallback;
  const eosToken = pick('eos_token', '<|endoftext|>');
  return new ClipBpeTokenizer({
    file: files.vocab,
    vocab: vocab as Record<string, number>,
    merges,
    length: sequenceLength(encoderLength, config.model_max_length),
    bosToken: pick('bos_token', '<|startoftext|>'),
    eosToken,
    padToken: pick('pad_token', eosToken),
  });
}
