import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/**
 * A message that is not what the protocol says: names the field, as a path from the message's root
 * (`commands[2].advance.to`, `RunConfig.sampler.steps`), and what is wrong with it. Nothing of the
 * message is used. Its code says whose it is: a peer's (broken, hostile or of another release:
 * 'unavailable', the default), or the user's own run configuration on its way out ('config').
 */
export class WireError extends EvoSearchError {
  override readonly name = 'WireError';
  constructor(
    readonly field: string,
    readonly problem: string,
    readonly code: ErrorCode = 'unavailable',
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${problem}`, options);
  }
}

/** A decoded message, as protobufjs gives it: plain objects, arrays, numbers, strings. */
export type Wire = Record<string, unknown>;

/** The sub-message at `at`; a WireError when it was not sent. */
export function wireRecord(value: unknown, at: string): Wire {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WireError(at, 'missing');
  return value as Wire;
}

/** The repeated field at `at`; a WireError when it is not one. */
export function wireList(value: unknown, at: string): unknown[] {
  if (!Array.isArray(value)) throw new WireError(at, 'missing');
  return value;
}
