/**
 * FK-steering potentials (Singhal et al., arXiv 2501.06848; docs/algorithms.md, section 5):
 * how a particle's score history becomes the r~ in its weight exp(lambda * r~).
 *
 * A particle's history is a few numbers, not the list of its scores, so it is copied cheaply with the
 * particle when resampling duplicates it (the copy inherits the ancestor's history).
 */

export type PotentialName = 'max' | 'add' | 'diff' | 'rt';

export const POTENTIAL_NAMES: readonly PotentialName[] = ['max', 'add', 'diff', 'rt'];

/** What a potential needs to remember of a particle's earlier scores. */
export interface PotentialHistory {
  /** Max of the scores so far; -Infinity before the first score. */
  readonly max: number;
  /** Sum of the scores so far. */
  readonly sum: number;
  /** The previous score; null before the first score. */
  readonly previous: number | null;
}

export const EMPTY_HISTORY: PotentialHistory = { max: -Infinity, sum: 0, previous: null };

/**
 * r~ for score `r` given the particle's history, and the history that includes `r`.
 *
 * - max: max(r, earlier scores). The reference code seeds the history with a `reward_min_value` (0),
 *   which flattens every weight when rewards are negative (ImageReward often is); here the max is over
 *   the scores actually seen, as the spec states it.
 * - add: r + the sum of earlier scores.
 * - diff: r - the previous score; the first score counts as its own difference (previous = 0, as the
 *   reference code's default initial reward gives).
 * - rt: r.
 */
export function applyPotential(name: PotentialName, history: PotentialHistory, r: number): { value: number; history: PotentialHistory } {
  const next: PotentialHistory = { max: Math.max(history.max, r), sum: history.sum + r, previous: r };
  switch (name) {
    case 'max':
      return { value: next.max, history: next };
    case 'add':
      return { value: next.sum, history: next };
    case 'diff':
      return { value: r - (history.previous ?? 0), history: next };
    case 'rt':
      return { value: r, history: next };
  }
}
