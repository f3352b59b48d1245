/**
 * Every random draw in a run has an address: (run seed, purpose, lineage id, step). The same address
 * gives the same numbers on any worker, in any order, in any batch, after any crash.
 */
export type NoisePurpose =
  /** x_T of a new trajectory. */
  | 'init'
  /** Sampler noise while a population member advances between generations. */
  | 'advance'
  /** Sampler noise while a candidate is rolled out to x0 for its fitness. */
  | 'rollout'
  /** The epsilon of a mutation. */
  | 'mutate'
  /** Coordinator-side choices: tournaments, resampling. */
  | 'select';

export const NOISE_PURPOSES: readonly NoisePurpose[] = ['init', 'advance', 'rollout', 'mutate', 'select'];

export interface NoiseAddress {
  readonly purpose: NoisePurpose;
  /** The candidate (or, for `select`, the generation or decision) the draw belongs to. */
  readonly lineage: number;
  /** Step index (0..N) or, for `select`, a decision counter. */
  readonly step: number;
}
