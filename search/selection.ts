import type { NoiseSource } from '../random/noise-source.js';

/** A candidate as selection sees it: an id and a finite fitness. */
export interface Scored {
  readonly id: number;
  readonly reward: number;
}

/**
 * Best first; ties go to the lower id so the order (and every decision built on it) is the same
 * whatever order the results arrived in.
 */
export function byFitness(a: Scored, b: Scored): number {
  return b.reward - a.reward || a.id - b.id;
}

/** The `count` fittest candidates, best first. */
export function elites<T extends Scored>(candidates: readonly T[], count: number): T[] {
  return [...candidates].sort(byFitness).slice(0, Math.min(count, candidates.length));
}

/**
 * `winners` tournaments over `candidates`: each one draws `size` distinct candidates uniformly without
 * replacement and the fittest wins (the authors' procedure).
 *
 * Drawing 90% of a 10,000-strong population 10,000 times costs 10^8 draws, so instead each winner is
 * sampled exactly from the same distribution: ranking the candidates best first, the winner of a
 * k-subset is its best-ranked member, and P(winner rank >= r) = C(n - r, k) / C(n, k). That CDF is the
 * same for every tournament of a generation, so it is built once (O(n)) and each tournament is one
 * uniform and a binary search. Tournament t of generation g reads ('select', g, t): the outcome depends
 * only on the seed, the generation, the index and the candidates' fitness, not on arrival order.
 */
export function tournamentWinners<T extends Scored>(
  candidates: readonly T[],
  winners: number,
  size: number,
  noise: NoiseSource,
  generation: number,
): T[] {
  const n = candidates.length;
  if (n === 0) throw new RangeError('tournament selection needs at least one candidate');
  const k = Math.max(1, Math.min(Math.floor(size), n));
  const ranked = [...candidates].sort(byFitness);
  const cdf = winnerRankCdf(n, k);
  const draw = new Float64Array(1);
  const chosen: T[] = [];
  for (let t = 0; t < winners; t++) {
    noise.uniforms({ purpose: 'select', lineage: generation, step: t }, draw);
    chosen.push(ranked[firstAbove(cdf, draw[0]!)]!);
  }
  return chosen;
}

/**
 * cdf[r] = P(the best-ranked member of a uniform k-subset of n ranks has rank <= r).
 * Survival S(r) = C(n - r, k) / C(n, k) obeys S(r + 1) = S(r) * (n - r - k) / (n - r).
 */
export function winnerRankCdf(n: number, k: number): Float64Array {
  const cdf = new Float64Array(n);
  let survival = 1;
  for (let r = 0; r < n; r++) {
    survival = r + k >= n ? 0 : survival * (n - r - k) / (n - r);
    cdf[r] = 1 - survival;
  }
  cdf[n - 1] = 1;
  return cdf;
}

/** The smallest index whose cdf value exceeds u (u in [0, 1)). */
export function firstAbove(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Tournament size from a fraction of the candidates (the authors use 90%), at least 1. */
export function tournamentSize(candidates: number, fraction: number, fixed?: number): number {
  if (fixed !== undefined) return Math.max(1, Math.min(fixed, candidates));
  return Math.max(1, Math.min(candidates, Math.floor(fraction * candidates)));
}
