/**
 * A prompts file (`evosearch run --prompts FILE`): one prompt per line, blank lines and lines starting
 * with # skipped. It is checked whole before any search runs: a file that is not UTF-8 text (binary,
 * UTF-16, another encoding), empty, too large, or with lines too long or holding control characters is
 * refused naming the file, the line and the column, with at most a short escaped excerpt of what is
 * there (never the raw bytes). Lines the model cannot take are collected by the caller (run-command.ts)
 * through `PromptsFileError.forLines`, so every bad line is reported at once, and nothing has run.
 */
import { open } from 'node:fs/promises';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** Most bytes a prompts file may hold (each line is a whole search; this is tens of thousands). */
export const MAX_PROMPTS_FILE_BYTES = 1024 * 1024;
/** Most characters of one prompt: the run config's limit (config/run-config-schema.ts, `prompt`). */
export const MAX_PROMPT_CHARS = 1000;
/** Most prompts one file runs (each is one search into its own subfolder). */
export const MAX_PROMPTS = 1000;
/** Bad lines listed in full; the rest are counted. */
export const LISTED_ISSUES = 10;

/** One prompt of the file, where it is. */
export interface PromptLine {
  readonly text: string;
  /** 1-based line number. */
  readonly line: number;
  /** 1-based column (in characters) of the prompt's first character. */
  readonly column: number;
}

/** What is wrong at one place of the file. */
export interface PromptsFileIssue {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

/** A prompts file that cannot run: names the file, and each bad line with its column. */
export class PromptsFileError extends EvoSearchError {
  readonly code: ErrorCode = 'bad-file';
  override readonly name = 'PromptsFileError';
  constructor(
    readonly file: string,
    detail: string,
    readonly issues: readonly PromptsFileIssue[] = [],
    options?: { cause?: unknown },
  ) {
    super(`prompts file ${file}: ${detail}`, options);
  }

  /**
   * The lines of `file` that cannot run, in one message: the first LISTED_ISSUES as `file:line:column:
   * what`, then how many more; `total` prompts were checked; `footer` (the vocabulary, say) ends it.
   */
  static forLines(file: string, issues: readonly PromptsFileIssue[], total: number, what = 'prompts', footer?: string): PromptsFileError {
    const sorted = [...issues].sort((a, b) => a.line - b.line || a.column - b.column);
    const lines = new Set(sorted.map((i) => i.line)).size;
    const listed = sorted.slice(0, LISTED_ISSUES).map((i) => `  ${file}:${i.line}:${i.column}: ${i.message}`);
    const more = sorted.length > LISTED_ISSUES ? [`  … and ${sorted.length - LISTED_ISSUES} more`] : [];
    const head = `${lines} of ${total} ${what} cannot run, so nothing was run:`;
    return new PromptsFileError(file, [head, ...listed, ...more, ...(footer === undefined ? [] : [footer])].join('\n'), sorted);
  }
}

/** A short, safe excerpt of bytes: printable ASCII as is, everything else as \xHH, cut at `max` bytes. */
export function escapeBytes(bytes: Uint8Array, max = 16): string {
  let out = '';
  for (const b of bytes.subarray(0, max)) {
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x22) out += '\\"';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else if (b === 0x09) out += '\\t';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `"${out}${bytes.length > max ? '…' : ''}"`;
}

/** A short, safe excerpt of text: control and invisible formatting characters escaped, cut at `max` characters. */
export function escapeText(text: string, max = 40): string {
  const chars = [...text];
  const shown = chars.slice(0, max).map((c) => {
    if (c === '\\') return '\\\\';
    if (c === '"') return '\\"';
    if (c === '\t') return '\\t';
    if (/\p{C}/u.test(c)) {
      const cp = c.codePointAt(0)!;
      return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
    }
    return c;
  });
  return `"${shown.join('')}${chars.length > max ? '…' : ''}"`;
}

/** Magic numbers of files people pick by mistake. */
const MAGIC: readonly (readonly [string, readonly number[]])[] = [
  ['a PNG image', [0x89, 0x50, 0x4e, 0x47]],
  ['a JPEG image', [0xff, 0xd8, 0xff]],
  ['a GIF image', [0x47, 0x49, 0x46, 0x38]],
  ['a PDF document', [0x25, 0x50, 0x44, 0x46, 0x2d]],
  ['a ZIP archive (or a .docx/.xlsx document)', [0x50, 0x4b, 0x03, 0x04]],
  ['a gzip archive', [0x1f, 0x8b]],
  ['an ELF executable', [0x7f, 0x45, 0x4c, 0x46]],
];

/** Offset of the first byte that does not start a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let length: number;
    let min: number;
    if ((b & 0xe0) === 0xc0) [length, min] = [2, 0x80];
    else if ((b & 0xf0) === 0xe0) [length, min] = [3, 0x800];
    else if ((b & 0xf8) === 0xf0) [length, min] = [4, 0x10000];
    else return i;
    if (i + length > n) return i;
    let cp = b & (0xff >> (length + 1));
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += length;
  }
  return -1;
}

const utf8 = new TextDecoder('utf-8');
/** Characters (code points) in some UTF-8 bytes. */
const charCount = (bytes: Uint8Array): number => [...utf8.decode(bytes)].length;

/** Line and column (1-based, in characters) of byte `offset`. */
function placeOf(bytes: Uint8Array, offset: number): { line: number; column: number; lineStart: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: charCount(bytes.subarray(lineStart, offset)) + 1, lineStart };
}

function formatSize(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

async function readBytes(path: string): Promise<Uint8Array> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new PromptsFileError(path, unreadable(error), [], { cause: error });
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw new PromptsFileError(path, 'is a folder, not a file; give a text file with one prompt per line');
    if (st.isFile() && st.size > MAX_PROMPTS_FILE_BYTES) {
      throw new PromptsFileError(path, `is ${formatSize(st.size)}; a prompts file holds at most ${formatSize(MAX_PROMPTS_FILE_BYTES)} (one prompt per line); is it the right file?`);
    }
    // Read at most one byte past the limit (a pipe or a device has no size to look at first).
    const buffer = new Uint8Array(MAX_PROMPTS_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_PROMPTS_FILE_BYTES) throw new PromptsFileError(path, `holds more than ${formatSize(MAX_PROMPTS_FILE_BYTES)}; a prompts file holds at most that (one prompt per line); is it the right file?`);
    }
    return buffer.subarray(0, length);
  } catch (error) {
    if (error instanceof PromptsFileError) throw error;
    throw new PromptsFileError(path, unreadable(error), [], { cause: error });
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function unreadable(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'does not exist; check the path (relative paths start at the current folder)';
    case 'EACCES':
    case 'EPERM':
      return 'cannot be read: no permission; change its permissions or copy it somewhere readable';
    case 'EISDIR':
      return 'is a folder, not a file; give a text file with one prompt per line';
    case 'ENOTDIR':
      return 'does not exist: a part of its path is a file, not a folder';
    default:
      return `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
}

/**
 * The prompts of a prompts file, each with its line and column. Throws PromptsFileError for a file
 * that is not text, is empty, or has lines no prompt can be (too long, control characters), listing
 * every such line.
 */
export async function readPromptsFile(path: string): Promise<PromptLine[]> {
  let bytes = await readBytes(path);
  if (bytes.length === 0) throw new PromptsFileError(path, 'is empty; write one prompt per line (lines starting with # are comments)');
  // Text in other encodings, and binary files: say what it looks like, show a few escaped bytes.
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw new PromptsFileError(path, `is UTF-16 text (it starts with the byte-order mark ${escapeBytes(bytes.subarray(0, 2))}); save it as UTF-8`);
  }
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3); // a UTF-8 byte-order mark
  const nul = bytes.indexOf(0);
  const controls = bytes.reduce((n, b) => n + (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d ? 1 : 0), 0);
  if (nul >= 0 || controls > bytes.length / 10) {
    const magic = MAGIC.find(([, sig]) => sig.every((b, i) => bytes[i] === b));
    const what = magic === undefined ? 'a binary file, not text' : `${magic[0]}, not text`;
    const at = nul >= 0 ? placeOf(bytes, nul) : null;
    const where = at === null ? '' : `; its first NUL byte is at line ${at.line}, column ${at.column}`;
    throw new PromptsFileError(path, `looks like ${what} (it starts with ${escapeBytes(bytes)}${where}); give a UTF-8 text file with one prompt per line`);
  }
  const invalid = firstInvalidUtf8(bytes);
  if (invalid >= 0) {
    const { line, column, lineStart } = placeOf(bytes, invalid);
    const lineEnd = bytes.indexOf(0x0a, invalid);
    const lineBytes = bytes.subarray(lineStart, lineEnd < 0 ? bytes.length : lineEnd);
    let badLines = 0;
    for (let start = 0; start <= bytes.length; ) {
      const end = bytes.indexOf(0x0a, start);
      if (firstInvalidUtf8(bytes.subarray(start, end < 0 ? bytes.length : end)) >= 0) badLines++;
      if (end < 0) break;
      start = end + 1;
    }
    const others = badLines > 1 ? ` (and ${badLines - 1} more line${badLines > 2 ? 's' : ''})` : '';
    throw new PromptsFileError(
      path,
      `is not UTF-8 text: line ${line}, column ${column} has the byte ${escapeBytes(bytes.subarray(invalid, invalid + 1))}${others}; that line reads ${escapeBytes(lineBytes, 40)}; save the file as UTF-8 (it may be Latin-1 or Windows-1252)`,
      [{ line, column, message: 'not UTF-8' }],
    );
  }

  const text = utf8.decode(bytes);
  const prompts: PromptLine[] = [];
  const issues: PromptsFileIssue[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const content = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const prompt = content.trim();
    if (prompt === '' || prompt.startsWith('#')) return;
    const column = [...content.slice(0, content.indexOf(prompt))].length + 1;
    const length = [...prompt].length;
    if (length > MAX_PROMPT_CHARS) {
      issues.push({ line, column, message: `the prompt is ${length} characters long; a prompt is at most ${MAX_PROMPT_CHARS}` });
      return;
    }
    const control = [...prompt].findIndex((c) => /\p{Cc}/u.test(c) && c !== '\t');
    if (control >= 0) {
      issues.push({ line, column: column + control, message: `a control character ${escapeText([...prompt][control]!)} is in the prompt ${escapeText(prompt)}; a prompt is plain text` });
      return;
    }
    prompts.push({ text: prompt, line, column });
  });
  const total = prompts.length + issues.length;
  if (issues.length > 0) throw PromptsFileError.forLines(path, issues, total, 'lines');
  if (prompts.length === 0) throw new PromptsFileError(path, 'holds no prompts, only blank lines and comments; write one prompt per line (lines starting with # are comments)');
  if (prompts.length > MAX_PROMPTS) throw new PromptsFileError(path, `holds ${prompts.length} prompts; one file runs at most ${MAX_PROMPTS} (one search each): split it`);
  return prompts;
}

/** 1-based column of word `position` of `prompt` (words separated by single spaces), or of its end. */
export function columnOfWord(prompt: PromptLine, position: number): number {
  const words = prompt.text.split(' ');
  const before = words.slice(0, Math.min(position, words.length)).join(' ');
  // Past the words before it and the space after them; at the end, just past the last word.
  if (position >= words.length) return prompt.column + [...prompt.text].length;
  return prompt.column + (position === 0 ? 0 : [...before].length + 1);
}
