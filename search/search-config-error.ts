import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
/** A search configuration that cannot run; `field` names the offending setting. */
export class SearchConfigError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'SearchConfigError';

  constructor(readonly field: string, readonly detail: string) {
    super(`${field}: ${detail}`);
  }
}
