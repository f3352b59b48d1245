import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/**
 * A message from the other side of the wire that is not what the protocol says: names the field, as a
 * path from the message's root (`commands[2].advance.to`), and what is wrong with it. The peer is broken,
 * hostile or of another release: nothing of its message is used.
 */
export class WireError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'WireError';
  constructor(readonly field: string, readonly problem: string, options?: { cause?: unknown }) {
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
