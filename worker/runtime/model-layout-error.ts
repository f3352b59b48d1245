import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';
/**
 * An ONNX graph whose inputs or outputs are not what the loader needs: names the model file, the
 * input (or output), what was expected and what the graph declares, so a wrong or stale export is
 * reported at load time instead of failing deep inside a run.
 */
export class ModelLayoutError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'ModelLayoutError';
  constructor(
    readonly file: string,
    /** The graph input or output concerned (`output 'x'` style names are used for outputs). */
    readonly input: string,
    readonly expected: string,
    readonly found: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${input}: expected ${expected}, found ${found}`, options);
  }
}
