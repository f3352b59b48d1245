/**
 * Which prompts a world model can take (models/world/WORLD.md): an image model draws still scenes, so
 * a motion prompt ("… moving left") asks it for something it cannot make; a video model was trained on
 * motion prompts only, and its composition checker measures clips. The grammar alone accepts both, so
 * without this check a mismatched prompt failed only once a worker had opened the models, with tensor
 * shapes. Checked at plan time, before any model opens.
 */
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import { FRAMES } from './palette.js';
import { DIRECTIONS, parsePrompt, type ParsedPrompt } from './prompt-grammar.js';

/** What a world model makes: still images, or videos of `frames` frames. */
export type WorldOutput = { readonly kind: 'image' } | { readonly kind: 'video'; readonly frames: number };

/** A prompt of the world's grammar that this model cannot make: says what the model makes and what prompts it takes. */
export class PromptModelError extends EvoSearchError {
  readonly code: ErrorCode = 'prompt';
  override readonly name = 'PromptModelError';
  constructor(
    readonly prompt: string,
    readonly model: string,
    readonly output: WorldOutput,
    /** What is wrong, without the prompt itself (a prompts file names the line instead). */
    readonly summary: string,
    /** The prompts the model takes, and where the refused one can go instead ("takes still prompts: …"). */
    readonly advice: string,
    /** Index of the word the mismatch is about ("moving"), or 0 for the whole prompt. */
    readonly position: number,
  ) {
    super(`prompt ${JSON.stringify(prompt)} ${summary}; it ${advice}`);
  }
}

const MOTIONS = DIRECTIONS.join('|');

/** The prompts a model of this output takes, in words, with examples ("takes still prompts: …"). */
export function promptsTaken(output: WorldOutput): string {
  return output.kind === 'image'
    ? `takes still prompts: one group ("two red circles"), two joined by "and" ("a red circle and a blue square") ` +
        `or a relation ("a red circle left of a blue square"); a motion prompt needs a video model (such as models/bundles/tiny-video)`
    : `takes motion prompts only: one group, or two joined by "and", then "moving ${MOTIONS}" ` +
        `("a red circle moving left", "a blue square and a green triangle moving up"); a still prompt needs an image model (such as models/bundles/tiny-sd)`;
}

/** Throws PromptModelError when `prompt` (of the grammar) asks `model` for what it does not make. */
export function checkPromptForModel(prompt: string | ParsedPrompt, model: string, output: WorldOutput): void {
  const p = typeof prompt === 'string' ? parsePrompt(prompt) : prompt;
  if (output.kind === 'image' && p.motion !== null) {
    const summary = `asks for motion ("moving ${p.motion}"), but the model '${model}' makes still images, not videos`;
    throw new PromptModelError(p.text, model, output, summary, promptsTaken(output), p.text.split(' ').indexOf('moving'));
  }
  if (output.kind === 'video' && p.motion === null) {
    const summary = `has no motion ("moving left", say), but the model '${model}' makes videos (${output.frames} frames)`;
    throw new PromptModelError(p.text, model, output, summary, promptsTaken(output), 0);
  }
}

/** The `_evosearch` fields of a bundle's model_index.json that say what a world model makes. */
export interface WorldIndexFields {
  readonly world?: unknown;
  readonly frames?: unknown;
  readonly latent_shape?: unknown;
  readonly family?: unknown;
}

/**
 * What a world bundle makes, from its model_index.json's `_evosearch` (`frames`, else its latent
 * shape or family), or null when it is no world bundle (a real export takes any text).
 */
export function worldOutputOf(own: WorldIndexFields): WorldOutput | null {
  if (own.world === undefined) return null;
  if (typeof own.frames === 'number' && Number.isInteger(own.frames)) return own.frames > 1 ? { kind: 'video', frames: own.frames } : { kind: 'image' };
  if (Array.isArray(own.latent_shape) && own.latent_shape.length === 4 && typeof own.latent_shape[0] === 'number') return { kind: 'video', frames: own.latent_shape[0] };
  return own.family === 'video' ? { kind: 'video', frames: FRAMES } : { kind: 'image' };
}
