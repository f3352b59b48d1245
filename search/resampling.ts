/**
 * Importance weights and multinomial resampling for particle sampling: plain functions over numbers,
 * so each can be checked on its own.
 */

/**
 * Normalised weights w_i = exp(lambda * v_i) / sum_j exp(lambda * v_j), computed after subtracting the
 * largest lambda * v so no term overflows (lambda = 10 on rewards of order 10 would give e^100) and the
 * largest term is exactly 1 (so the sum is at least 1 and never underflows to 0). Values must be finite.
 */
export function normalizedWeights(values: readonly number[], lambda: number): Float64Array {
  const n = values.length;
  const w = new Float64Array(n);
  if (n === 0) return w;
  let top = -Infinity;
  for (let i = 0; i < n; i++) top = Math.max(top, lambda * values[i]!);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    w[i] = Math.exp(lambda * values[i]! - top);
    sum += w[i]!;
  }
  for (let i = 0; i < n; i++) w[i]! /= sum;
  return w;
}

/** Effective sample size 1 / sum(w^2) of normalised weights: n when even, 1 when one particle has all. */
export function effectiveSampleSize(normalized: ArrayLike<number>): number {
  let sumSquares = 0;
  for (let i = 0; i < normalized.length; i++) sumSquares += normalized[i]! * normalized[i]!;
  return 1 / sumSquares;
}

/**
 * Multinomial resampling: one ancestor per uniform u in [0, 1), by inverse CDF (the first index whose
 * cumulative weight exceeds u * total). A zero weight is never chosen: its cumulative value equals its
 * predecessor's, which the search has already passed. Returned in draw order.
 */
export function multinomialAncestors(normalized: ArrayLike<number>, uniforms: ArrayLike<number>): number[] {
  const n = normalized.length;
  if (n === 0) throw new RangeError('multinomial resampling needs at least one weight');
  const cumulative = new Float64Array(n);
  let total = 0;
  let lastPositive = -1;
  for (let i = 0; i < n; i++) {
    total += normalized[i]!;
    cumulative[i] = total;
    if (normalized[i]! > 0) lastPositive = i;
  }
  if (lastPositive < 0) throw new RangeError('multinomial resampling needs a positive weight');
  const ancestors: number[] = [];
  for (let d = 0; d < uniforms.length; d++) {
    const target = uniforms[d]! * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    // Rounding can leave target >= cumulative[n - 1]: fall back on the last particle that has weight.
    ancestors.push(cumulative[lo]! > target ? lo : lastPositive);
  }
  return ancestors;
}
