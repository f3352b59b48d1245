import type { NoiseSource } from '../random/noise-source.js';
import { byFitness, firstAbove, winnerRankCdf, type Scored } from './selection.js';

/** A candidate as fitness sharing sees it: its fitness and the embedding of the sample that scored it. */
export interface Embedded extends Scored {
  /** The guidance reward's image embedding (unit-normalised by the reward graph; normalised again here). */
  readonly embedding: Float32Array;
}

export interface SharingParameters {
  /** σ_share: candidates closer than this (Euclidean distance of unit embeddings, in [0, 2]) share fitness. */
  readonly radius: number;
  /** α: the shape of the sharing kernel (1: linear fall-off with distance). */
  readonly alpha: number;
}

/**
 * Goldberg and Richardson's fitness sharing over the pool: f'_i = f_i / Σ_j sh(d_ij), with
 * sh(d) = 1 − (d/σ)^α for d < σ and 0 beyond (sh(0) = 1, so every candidate counts itself once).
 * A candidate in a crowded niche (the near-copies a 90% tournament breeds from one parent) has its
 * fitness divided among the crowd, so a lone candidate of a little lower reward can win tournaments.
 *
 * Sharing needs fitness ≥ 0 (dividing a negative fitness by the crowd would raise it), and guidance
 * rewards can be negative, so the fitness shared is the reward above the pool's worst, plus a margin of
 * 1e-9 of the pool's range so that the worst candidate is not zero whatever its niche. This is a
 * monotone shift: without neighbours the order is the raw order.
 *
 * Pure and order-independent: the result for candidate i depends on the pool as a set (sums of the
 * same terms in id order), so the tournament's ranking, ties broken by id, is the same whatever order
 * the scores arrived in.
 */
export function sharedFitness<T extends Embedded>(pool: readonly T[], parameters: SharingParameters): Scored[] {
  if (pool.length === 0) return [];
  const { byId, niche, shifted } = niches(pool, parameters);
  return byId.map((c, i) => ({ id: c.id, reward: shifted(c.reward) / niche[i]! }));
}

/**
 * The pool in id order, its sharing kernel sh(d_ij) (row-major) and niche counts Σ_j sh(d_ij), and the
 * shift that makes fitness positive (the reward above the pool's worst, plus a margin).
 */
function niches<T extends Embedded>(pool: readonly T[], parameters: SharingParameters) {
  const n = pool.length;
  const byId = [...pool].sort((a, b) => a.id - b.id);
  const units = byId.map((c) => unit(c.embedding, c.id));
  const size = units[0]!.length;
  for (const [k, u] of units.entries()) {
    if (u.length !== size) throw new RangeError(`candidate ${byId[k]!.id} has an embedding of ${u.length} floats, candidate ${byId[0]!.id} one of ${size}`);
  }
  const kernel = new Float64Array(n * n);
  const niche = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const sh = sharing(distance(units[i]!, units[j]!), parameters);
      kernel[i * n + j] = sh;
      niche[i] = niche[i]! + sh;
    }
  }
  let worst = Infinity;
  let best = -Infinity;
  for (const c of byId) {
    worst = Math.min(worst, c.reward);
    best = Math.max(best, c.reward);
  }
  const margin = Math.max((best - worst) * 1e-9, Number.MIN_VALUE);
  return { byId, kernel, niche, shifted: (reward: number) => reward - worst + margin };
}

/** sh(d): 1 at d = 0, falling to 0 at the radius, 0 beyond. */
export function sharing(d: number, { radius, alpha }: SharingParameters): number {
  return d < radius ? 1 - (d / radius) ** alpha : 0;
}

function distance(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let k = 0; k < a.length; k++) sum += (a[k]! - b[k]!) ** 2;
  return Math.sqrt(sum);
}

/** The embedding scaled to length 1, so the distances do not depend on the graph's own normalisation. */
function unit(embedding: Float32Array, id: number): Float64Array {
  let norm = 0;
  for (const v of embedding) norm += v * v;
  if (!(norm > 0) || !Number.isFinite(norm)) throw new RangeError(`the embedding of candidate ${id} has length ${Math.sqrt(norm)}; fitness sharing needs a finite, non-zero embedding`);
  const scale = 1 / Math.sqrt(norm);
  return Float64Array.from(embedding, (v) => v * scale);
}

/**
 * `winners` tournaments on shared fitness, where each win also counts in the niches: after tournament
 * t, every candidate's niche count grows by sh(d(candidate, winner)), as if the child the winner breeds
 * already stood in the pool. Without this a 90% tournament hands ~90% of the children to whichever
 * candidate ranks first on shared fitness, and the population collapses onto that one instead
 * (bench/reports/population-diversity). With it a niche's share of the children falls with every
 * child it gets, as fitness-proportionate selection with sharing balances niches.
 *
 * Each tournament is sampled exactly as selection.ts's tournamentWinners does (the winner of a uniform
 * k-subset is its best-ranked member), on the ranking of the moment, with the same uniform
 * ('select', generation, t). The first tournament, with no two candidates within the radius, is the raw
 * tournament's; after it even a lone winner counts its own child (sh(0) = 1), so one candidate's
 * second child halves its shared fitness, its third thirds it. Cost: O(n² d) for the distances, O(n log n) per tournament.
 */
export function sharedTournamentWinners<T extends Embedded>(
  pool: readonly T[],
  winners: number,
  size: number,
  noise: NoiseSource,
  generation: number,
  parameters: SharingParameters,
): T[] {
  const n = pool.length;
  if (n === 0) throw new RangeError('tournament selection needs at least one candidate');
  const { byId, kernel, niche, shifted } = niches(pool, parameters);
  const k = Math.max(1, Math.min(Math.floor(size), n));
  const cdf = winnerRankCdf(n, k);
  const draw = new Float64Array(1);
  const chosen: T[] = [];
  for (let t = 0; t < winners; t++) {
    const ranked = byId.map((c, i) => ({ id: c.id, reward: shifted(c.reward) / niche[i]!, index: i })).sort(byFitness);
    noise.uniforms({ purpose: 'select', lineage: generation, step: t }, draw);
    const winner = ranked[firstAbove(cdf, draw[0]!)]!.index;
    chosen.push(byId[winner]!);
    for (let i = 0; i < n; i++) niche[i] = niche[i]! + kernel[i * n + winner]!;
  }
  return chosen;
}
