/**
 * What a prompt tokenizer gives a text encoder, whichever files it was read from (tokenizer.ts: CLIP's
 * vocab.json + merges.txt; hf-tokenizer-json.ts: a Hugging Face tokenizer.json).
 */
export interface Tokenizer {
  /** Ids per encoded prompt (the text encoder's sequence length). */
  readonly length: number;
  readonly padId: number;
  /** `length` ids for `text`: specials added, truncated, padded. */
  encode(text: string): Int32Array;
  /** How many of encode(text)'s ids are not padding (specials included): an attention mask's ones. */
  count(text: string): number;
}
