/**
 * A sampler config that cannot be built. Raised up front by createSampler, so a
 * typo in a YAML file fails before any compute is spent; `field` names the offending key (diffusers'
 * spelling) and the message says what would have been accepted.
 */
import { describeValue } from '../errors/describe-value.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

export class SamplerConfigError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'SamplerConfigError';
  constructor(
    /** The config key at fault, e.g. `timestep_spacing`. */
    readonly field: string,
    /** The value given (undefined when the key was missing). */
    readonly value: unknown,
    /** What the field accepts, e.g. `one of 'leading', 'trailing', 'linspace'`. */
    readonly requirement: string,
  ) {
    super(`sampler config: ${field} must be ${requirement}, got ${describeValue(value)}`);
  }

  /** What is wrong, without the field's name: "must be …, got …". */
  get detail(): string {
    return `must be ${this.requirement}, got ${describeValue(this.value)}`;
  }
}

