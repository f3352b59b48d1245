/** A search configuration that cannot run; `field` names the offending setting. */
export class SearchConfigError extends Error {
  override readonly name = 'SearchConfigError';

  constructor(readonly field: string, detail: string) {
    super(`${field}: ${detail}`);
  }
}
