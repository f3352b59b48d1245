import { EvoSearchError, type ErrorCode } from './evosearch-error.js';

/** A plan or a flag past a limit of this machine or of the runtime. */
export class LimitError extends EvoSearchError {
  readonly code: ErrorCode = 'limit';
  override readonly name = 'LimitError';
  constructor(
    /** Which limit: memory, threads, population, run record. */
    readonly limit: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${limit} limit: ${detail}`, options);
  }
}
