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
