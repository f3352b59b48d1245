import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { elites, tournamentSize, tournamentWinners, winnerRankCdf } from '../search/selection.js';
import { NoiseSource } from '../random/noise-source.js';

describe('selection', () => {
  it('elites are the fittest, ties broken by the lower id', () => {
    const pool = [
      { id: 4, reward: 0.5 },
      { id: 2, reward: 0.9 },
      { id: 7, reward: 0.9 },
      { id: 1, reward: 0.1 },
    ];
    assert.deepEqual(elites(pool, 3).map((c) => c.id), [2, 7, 4]);
    assert.equal(elites(pool, 10).length, 4);
  });

  it('the winner-rank CDF equals the best rank of a uniform k-subset (brute force over all subsets)', () => {
    const n = 7;
    for (let k = 1; k <= n; k++) {
      const counts = new Array<number>(n).fill(0);
      let subsets = 0;
      for (let mask = 0; mask < 1 << n; mask++) {
        if (popcount(mask) !== k) continue;
        subsets += 1;
        counts[ctz(mask)]! += 1;
      }
      const cdf = winnerRankCdf(n, k);
      let cumulative = 0;
      for (let r = 0; r < n; r++) {
        cumulative += counts[r]! / subsets;
        assert.ok(Math.abs(cdf[r]! - cumulative) < 1e-12, `n=${n} k=${k} r=${r}: ${cdf[r]} vs ${cumulative}`);
      }
    }
  });

  it('tournament winners follow the explicit without-replacement tournament in distribution', () => {
    // Explicit tournaments (a random 90% subset, fittest wins) against the sampled ones: chi-square.
    const n = 20;
    const pool = Array.from({ length: n }, (_, id) => ({ id, reward: Math.sin(id * 1.7) }));
    const k = tournamentSize(n, 0.9);
    assert.equal(k, 18);
    const draws = 40000;
    const sampled = tournamentWinners(pool, draws, k, new NoiseSource(11), 0);
    const observed = new Map<number, number>();
    for (const w of sampled) observed.set(w.id, (observed.get(w.id) ?? 0) + 1);
    const ranked = [...pool].sort((a, b) => b.reward - a.reward);
    const cdf = winnerRankCdf(n, k);
    let chi2 = 0;
    let cells = 0;
    ranked.forEach((c, r) => {
      const p = cdf[r]! - (r === 0 ? 0 : cdf[r - 1]!);
      if (p === 0) {
        assert.equal(observed.get(c.id) ?? 0, 0, `rank ${r} can never win a ${k}-subset tournament`);
        return;
      }
      const expected = p * draws;
      chi2 += ((observed.get(c.id) ?? 0) - expected) ** 2 / expected;
      cells += 1;
    });
    // 3 cells (ranks 0..2 can win an 18-of-20 tournament); chi-square 0.999 quantile at 2 dof is 13.8.
    assert.equal(cells, 3);
    assert.ok(chi2 < 13.8, `chi2 = ${chi2}`);
  });

  it('tournaments are reproducible and depend on generation and seed', () => {
    const pool = Array.from({ length: 50 }, (_, id) => ({ id, reward: Math.cos(id) }));
    const ids = (seed: number, g: number) => tournamentWinners(pool, 30, 5, new NoiseSource(seed), g).map((c) => c.id);
    assert.deepEqual(ids(1, 0), ids(1, 0));
    assert.notDeepEqual(ids(1, 0), ids(1, 1));
    assert.notDeepEqual(ids(1, 0), ids(2, 0));
    // The input order of the pool does not matter.
    const shuffled = [...pool].reverse();
    assert.deepEqual(tournamentWinners(shuffled, 30, 5, new NoiseSource(1), 0).map((c) => c.id), ids(1, 0));
  });

  it('a tournament of size 1 is uniform; a tournament of everyone always picks the best', () => {
    const pool = Array.from({ length: 10 }, (_, id) => ({ id, reward: id }));
    assert.ok(tournamentWinners(pool, 50, 10, new NoiseSource(3), 0).every((c) => c.id === 9));
    const uniform = new Set(tournamentWinners(pool, 500, 1, new NoiseSource(3), 0).map((c) => c.id));
    assert.equal(uniform.size, 10);
  });
});

function popcount(x: number): number {
  let c = 0;
  for (; x; x &= x - 1) c++;
  return c;
}

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}
