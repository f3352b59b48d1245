/**
 * The prompt grammar of the procedural world (models/world/WORLD.md):
 *
 *     prompt   := group | group " " relation " " group | group " and " group | motion
 *     group    := count " " [size " "] color " " shape["s" if count > 1]
 *     motion   := group [" and " group] " moving " direction
 *
 * Prompts come from users and configs, so a prompt outside the grammar is refused with a PromptError that
 * names the offending word, says what was expected there and lists the vocabulary. The Python twin is
 * models/world/prompts.py.
 */
import {
  COLOR_NAMES,
  radiusOf,
  SHAPE_NAMES,
  SIZE_WORDS,
  type ColorName,
  type ShapeName,
  type SizeWord,
} from './palette.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

export const COUNT_WORDS = { a: 1, one: 1, two: 2, three: 3 } as const;
export type CountWord = keyof typeof COUNT_WORDS;
export const RELATIONS = ['left of', 'right of', 'above', 'below'] as const;
export type Relation = (typeof RELATIONS)[number];
export const DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
export type Direction = (typeof DIRECTIONS)[number];
export type PromptForm = 'single' | 'relation' | 'conjunction' | 'motion';

/** Every word the grammar knows. */
export const VOCABULARY: readonly string[] = [
  ...Object.keys(COUNT_WORDS),
  ...SIZE_WORDS,
  ...COLOR_NAMES,
  ...SHAPE_NAMES,
  ...SHAPE_NAMES.map((s) => `${s}s`),
  'left',
  'right',
  'of',
  'above',
  'below',
  'and',
  'moving',
  'up',
  'down',
];

/** One noun phrase: `count` objects of one size, color and shape. */
export interface PromptGroup {
  readonly count: 1 | 2 | 3;
  readonly countWord: CountWord;
  readonly size: SizeWord | null;
  readonly radius: number;
  readonly color: ColorName;
  readonly shape: ShapeName;
}

export interface ParsedPrompt {
  readonly text: string;
  readonly form: PromptForm;
  /** One group, or two (relation, conjunction, two-group motion). */
  readonly groups: readonly [PromptGroup] | readonly [PromptGroup, PromptGroup];
  /** Relation of groups[0] to groups[1] (form 'relation'), else null. */
  readonly relation: Relation | null;
  /** Direction every object moves (form 'motion': a video prompt), else null. */
  readonly motion: Direction | null;
}

/** A prompt outside the grammar. `word` is the offending word, or null when the prompt ended too early. */
export class PromptError extends EvoSearchError {
  readonly code: ErrorCode = 'prompt';
  override readonly name = 'PromptError';
  constructor(
    readonly prompt: string,
    /** Index of the offending word (= number of words when the prompt ended too early). */
    readonly position: number,
    readonly word: string | null,
    /** What the grammar allows at that position. */
    readonly expected: readonly string[],
    /** What is wrong, without the prompt or the vocabulary (for messages that name the prompt themselves). */
    readonly reason: string,
  ) {
    super(`${reason} in prompt ${JSON.stringify(prompt)}; allowed here: ${expected.join(' | ')}; vocabulary: ${VOCABULARY.join(' ')}`);
  }
}

const isOneOf = <T extends string>(list: readonly T[], w: string | undefined): w is T => w !== undefined && (list as readonly string[]).includes(w);

/** Parse a prompt (words separated by single spaces, lower case). Throws PromptError. */
export function parsePrompt(text: string): ParsedPrompt {
  const words = text.split(' ');
  let pos = 0;

  const fail = (expected: readonly string[], what: string): never => {
    const word = words[pos] ?? null;
    let reason: string;
    if (word === null) reason = `missing ${what} after ${JSON.stringify(words[pos - 1] ?? '')} at the end`;
    else if (word === '') reason = `empty word at position ${pos} (words are separated by single spaces)`;
    else if (!VOCABULARY.includes(word)) reason = `unknown word ${JSON.stringify(word)} at position ${pos}, expected ${what}`;
    else reason = `unexpected word ${JSON.stringify(word)} at position ${pos}, expected ${what}`;
    throw new PromptError(text, pos, word, expected, reason);
  };

  const group = (): PromptGroup => {
    const countWord = words[pos];
    if (!isOneOf(Object.keys(COUNT_WORDS) as CountWord[], countWord)) return fail(Object.keys(COUNT_WORDS), 'a count');
    const count = COUNT_WORDS[countWord];
    pos++;
    let size: SizeWord | null = null;
    if (isOneOf(SIZE_WORDS, words[pos])) {
      size = words[pos] as SizeWord;
      pos++;
    }
    const color = words[pos];
    if (!isOneOf(COLOR_NAMES, color)) return fail(size === null ? [...SIZE_WORDS, ...COLOR_NAMES] : COLOR_NAMES, size === null ? 'a size or a color' : 'a color');
    pos++;
    // The noun's number must agree with the count: "a red circles" and "two red circle" are errors.
    const nouns = SHAPE_NAMES.map((s) => (count > 1 ? `${s}s` : s));
    const noun = words[pos];
    if (!isOneOf(nouns, noun)) {
      return fail(nouns, `a ${count > 1 ? 'plural' : 'singular'} shape noun (count "${countWord}")`);
    }
    pos++;
    const shape = (count > 1 ? noun.slice(0, -1) : noun) as ShapeName;
    return { count, countWord, size, radius: radiusOf(size), color, shape };
  };

  const direction = (): Direction => {
    const w = words[pos];
    if (!isOneOf(DIRECTIONS, w)) return fail(DIRECTIONS, 'a direction');
    pos++;
    return w;
  };

  const end = (after: readonly string[]): void => {
    if (pos < words.length) fail([...after, '<end of prompt>'], after.length > 0 ? `${after.map((w) => `"${w}"`).join(', ')} or the end` : 'the end');
  };

  const build = (form: PromptForm, groups: ParsedPrompt['groups'], relation: Relation | null, motion: Direction | null): ParsedPrompt => ({
    text,
    form,
    groups,
    relation,
    motion,
  });

  const first = group();
  if (pos === words.length) return build('single', [first], null, null);
  const w = words[pos];
  if (w === 'moving') {
    pos++;
    const d = direction();
    end([]);
    return build('motion', [first], null, d);
  }
  if (w === 'and') {
    pos++;
    const second = group();
    if (words[pos] === 'moving') {
      pos++;
      const d = direction();
      end([]);
      return build('motion', [first, second], null, d);
    }
    end(['moving']);
    return build('conjunction', [first, second], null, null);
  }
  if (w === 'left' || w === 'right') {
    pos++;
    if (words[pos] !== 'of') fail(['of'], '"of"');
    pos++;
    const second = group();
    end([]);
    return build('relation', [first, second], `${w} of`, null);
  }
  if (w === 'above' || w === 'below') {
    pos++;
    const second = group();
    end([]);
    return build('relation', [first, second], w, null);
  }
  return fail(['and', 'left', 'right', 'above', 'below', 'moving'], '"and", a relation or "moving"');
}

/** The canonical text of a group ("a", "one", "two", "three" kept as written). */
export function formatGroup(g: PromptGroup): string {
  const noun = g.count > 1 ? `${g.shape}s` : g.shape;
  return [g.countWord, ...(g.size ? [g.size] : []), g.color, noun].join(' ');
}

export function formatPrompt(p: Pick<ParsedPrompt, 'form' | 'groups' | 'relation' | 'motion'>): string {
  const [first, second] = p.groups;
  let text = formatGroup(first);
  if (second !== undefined) text += p.form === 'relation' ? ` ${p.relation} ${formatGroup(second)}` : ` and ${formatGroup(second)}`;
  if (p.form === 'motion') text += ` moving ${p.motion}`;
  return text;
}

/** Object combinations no training prompt holds (WORLD.md, held-out prompts). */
export const HELDOUT_OBJECTS: readonly (readonly [ColorName, ShapeName])[] = [
  ['purple', 'triangle'],
  ['yellow', 'square'],
  ['white', 'circle'],
];

/** WORLD.md's held-out rule: a held-out object, or 'below' with a green first group. */
export function isHeldoutPrompt(prompt: ParsedPrompt | string): boolean {
  const p = typeof prompt === 'string' ? parsePrompt(prompt) : prompt;
  if (p.groups.some((g) => HELDOUT_OBJECTS.some(([c, s]) => g.color === c && g.shape === s))) return true;
  return p.relation === 'below' && p.groups[0].color === 'green';
}
