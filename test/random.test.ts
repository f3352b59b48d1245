/**
 * Tests for addressable noise (random/): the Philox4x32-10 block function against published answers,
 * the distribution of the normals, independence between addresses, invariance to order and batching,
 * and the errors for bad seeds and addresses.
 *
 * All draws use fixed seeds, so every statistical check is deterministic; the tolerances are still
 * derived from standard errors so that a pass means something (a broken generator would fail them
 * with overwhelming probability).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NOISE_PURPOSES, type NoiseAddress, type NoisePurpose } from '../random/noise-address.js';
import { NoiseAddressError, NoiseSource } from '../random/noise-source.js';
import { mulhi32, philox4x32 } from '../random/philox.js';

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

const addr = (purpose: NoisePurpose, lineage: number, step: number): NoiseAddress => ({ purpose, lineage, step });

/** mulberry32: a tiny independent PRNG for shuffles and chunk sizes, so the tests do not grade the generator with itself. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/**
 * erf by Abramowitz & Stegun, Handbook of Mathematical Functions (1964), formula 7.1.26:
 * |error| <= 1.5e-7, four orders of magnitude below the KS critical distance used here (~2e-3).
 */
function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * ax);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign * (1 - poly * Math.exp(-ax * ax));
}

/** Standard normal CDF. */
const Phi = (x: number): number => 0.5 * (1 + erf(x / Math.SQRT2));

/** Two-sided one-sample Kolmogorov-Smirnov statistic D_n of `sample` against `cdf`. */
function ksStatistic(sample: ArrayLike<number>, cdf: (x: number) => number): number {
  const sorted = Float64Array.from(sample).sort();
  const n = sorted.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(sorted[i]);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  return d;
}

/**
 * Asymptotic KS critical value at alpha = 0.001: K_{1-alpha} / sqrt(n) with
 * K = sqrt(-ln(alpha / 2) / 2) = 1.9495 (Kolmogorov limit law; n here is >= 10^5, where it is accurate).
 */
const ksCritical = (n: number): number => Math.sqrt(-Math.log(0.001 / 2) / 2) / Math.sqrt(n);

const bits32 = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
const bits64 = (a: Float64Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length * 2);

/** Checks a thrown value is a NoiseAddressError (hence a RangeError) naming `field` and showing `shown`. */
function expectAddressError(fn: () => unknown, field: string, shown: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NoiseAddressError, `expected NoiseAddressError, got ${String(err)}`);
    assert.ok(err instanceof RangeError);
    assert.equal(err.field, field);
    assert.ok(err.message.includes(field), `message names the field: ${err.message}`);
    assert.ok(err.message.includes(shown), `message shows the value ${shown}: ${err.message}`);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------------
// Philox4x32-10
// ---------------------------------------------------------------------------------------------------

/** Reference Philox4x32-10 on BigInt, written straight from Salmon et al. 2011, for cross-checking. */
function philoxReference(ctr: readonly number[], key: readonly number[]): number[] {
  const mask = 0xffffffffn;
  let [x0, x1, x2, x3] = ctr.map(BigInt);
  let [k0, k1] = key.map(BigInt);
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + 0x9e3779b9n) & mask;
      k1 = (k1 + 0xbb67ae85n) & mask;
    }
    const p0 = 0xd2511f53n * x0;
    const p1 = 0xcd9e8d57n * x2;
    [x0, x1, x2, x3] = [(p1 >> 32n) ^ x1 ^ k0, p1 & mask, (p0 >> 32n) ^ x3 ^ k1, p0 & mask];
  }
  return [x0, x1, x2, x3].map(Number);
}

test('philox4x32-10 matches the Random123 known-answer vectors (tests/kat_vectors)', () => {
  // Lines "philox4x32 10 <ctr x4> <key x2> <expected x4>" of DEShawResearch/random123 tests/kat_vectors.
  const vectors: Array<[number[], number[], number[]]> = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];
  const out = new Uint32Array(4);
  for (const [ctr, key, expected] of vectors) {
    philox4x32(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], out);
    assert.deepEqual(Array.from(out), expected);
    assert.deepEqual(philoxReference(ctr, key), expected, 'the BigInt reference agrees too');
  }
});

test('philox4x32-10 agrees with a BigInt reference on 2000 random counters and keys', () => {
  const rand = mulberry32(12345);
  const word = (): number => Math.floor(rand() * 2 ** 32);
  const out = new Uint32Array(4);
  for (let i = 0; i < 2000; i++) {
    const ctr = [word(), word(), word(), word()];
    const key = [word(), word()];
    philox4x32(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], out);
    assert.deepEqual(Array.from(out), philoxReference(ctr, key));
  }
});

test('mulhi32 is the exact high half of a 32x32-bit product', () => {
  const rand = mulberry32(777);
  const edge = [0, 1, 2, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0xd2511f53, 0xcd9e8d57];
  const pairs: Array<[number, number]> = [];
  for (const a of edge) for (const b of edge) pairs.push([a, b]);
  for (let i = 0; i < 20000; i++) pairs.push([Math.floor(rand() * 2 ** 32), Math.floor(rand() * 2 ** 32)]);
  for (const [a, b] of pairs) {
    assert.equal(mulhi32(a, b), Number((BigInt(a) * BigInt(b)) >> 32n), `mulhi32(${a}, ${b})`);
  }
});

// ---------------------------------------------------------------------------------------------------
// Distribution
// ---------------------------------------------------------------------------------------------------

const N_DIST = 1_000_000;
const distSample = new NoiseSource(20240601n).normals(addr('init', 3, 0), new Float32Array(N_DIST));

test('normals: mean, variance, skewness and excess kurtosis at 10^6 samples', () => {
  const n = distSample.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += distSample[i];
  mean /= n;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  for (let i = 0; i < n; i++) {
    const d = distSample[i] - mean;
    const d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  const skew = m3 / m2 ** 1.5;
  const exKurt = m4 / (m2 * m2) - 3;
  // Standard errors under N(0,1): mean 1/sqrt(n), variance sqrt(2/n), skewness sqrt(6/n), excess
  // kurtosis sqrt(24/n). Tolerance: 5 standard errors (two-sided false alarm ~6e-7 each).
  const k = 5;
  assert.ok(Math.abs(mean) < k / Math.sqrt(n), `mean ${mean}`);
  assert.ok(Math.abs(m2 - 1) < k * Math.sqrt(2 / n), `variance ${m2}`);
  assert.ok(Math.abs(skew) < k * Math.sqrt(6 / n), `skewness ${skew}`);
  assert.ok(Math.abs(exKurt) < k * Math.sqrt(24 / n), `excess kurtosis ${exKurt}`);
  for (let i = 0; i < n; i++) assert.ok(Number.isFinite(distSample[i]));
});

test('normals: Kolmogorov-Smirnov against the standard normal CDF, alpha = 0.001', () => {
  const d = ksStatistic(distSample, Phi);
  const crit = ksCritical(distSample.length);
  assert.ok(d < crit, `D = ${d}, critical ${crit}`);
});

test('uniforms: in [0, 1), mean 1/2, Kolmogorov-Smirnov against U(0,1) at alpha = 0.001', () => {
  const n = 200_000;
  const u = new NoiseSource(99).uniforms(addr('select', 0, 0), new Float64Array(n));
  let mean = 0;
  for (let i = 0; i < n; i++) {
    assert.ok(u[i] >= 0 && u[i] < 1);
    mean += u[i];
  }
  mean /= n;
  // SE of the mean of U(0,1) is sqrt(1/12n); 5 SE.
  assert.ok(Math.abs(mean - 0.5) < 5 * Math.sqrt(1 / (12 * n)), `mean ${mean}`);
  const d = ksStatistic(u, (x) => Math.min(1, Math.max(0, x)));
  assert.ok(d < ksCritical(n), `D = ${d}`);
});

// ---------------------------------------------------------------------------------------------------
// Independence across addresses
// ---------------------------------------------------------------------------------------------------

test('streams of different addresses and seeds are uncorrelated (|r| < 4/sqrt(n))', () => {
  // Under independence the sample correlation has standard error 1/sqrt(n); 4 SE.
  const n = 100_000;
  const limit = 4 / Math.sqrt(n);
  const s1 = new NoiseSource(1);
  const draw = (s: NoiseSource, a: NoiseAddress) => s.normals(a, new Float32Array(n));
  const base = draw(s1, addr('advance', 41, 7));
  const cases: Array<[string, Float32Array, Float32Array]> = [
    ['neighbouring lineages', base, draw(s1, addr('advance', 42, 7))],
    ['neighbouring steps', base, draw(s1, addr('advance', 41, 8))],
    ['neighbouring seeds', base, draw(new NoiseSource(2), addr('advance', 41, 7))],
    ['seeds differing only in the high key word', draw(new NoiseSource(0), addr('advance', 41, 7)), draw(new NoiseSource(2 ** 32), addr('advance', 41, 7))],
    ['lineage 0 vs step 0 swapped', draw(s1, addr('rollout', 0, 1)), draw(s1, addr('rollout', 1, 0))],
    ['stream vs itself shifted by one element', base.subarray(0, n - 1), base.subarray(1)],
    ['stream vs itself shifted by one block', base.subarray(0, n - 4), base.subarray(4)],
  ];
  for (let i = 0; i < NOISE_PURPOSES.length; i++) {
    for (let j = i + 1; j < NOISE_PURPOSES.length; j++) {
      cases.push([
        `purposes ${NOISE_PURPOSES[i]} / ${NOISE_PURPOSES[j]}`,
        draw(s1, addr(NOISE_PURPOSES[i], 41, 7)),
        draw(s1, addr(NOISE_PURPOSES[j], 41, 7)),
      ]);
    }
  }
  // Normals and uniforms of one address come from separate streams.
  cases.push(['normals vs uniforms of one address', base, Float32Array.from(s1.uniforms(addr('advance', 41, 7), new Float64Array(n)))]);
  for (const [name, x, y] of cases) {
    const r = pearson(x, y);
    assert.ok(Math.abs(r) < limit, `${name}: r = ${r}, limit ${limit}`);
  }
});

test('no two of 9000 addresses share their first values', () => {
  const firstNormals = new Set<string>();
  const firstUniforms = new Set<number>();
  const pair = new Float32Array(2);
  const one = new Float64Array(1);
  let count = 0;
  for (const seed of [7, 8]) {
    const s = new NoiseSource(seed);
    for (const purpose of NOISE_PURPOSES) {
      for (let lineage = 0; lineage < 30; lineage++) {
        for (let step = 0; step < 30; step++) {
          const a = addr(purpose, lineage, step);
          s.normals(a, pair);
          // Two float32 normals as the key: a single float32 has ~2^24 distinguishable values near
          // its mode, so among 9000 draws a chance repeat of one value would be quite likely.
          firstNormals.add(`${pair[0]},${pair[1]}`);
          firstUniforms.add(s.uniforms(a, one)[0]);
          count++;
        }
      }
    }
  }
  assert.equal(count, 9000);
  assert.equal(firstNormals.size, count);
  assert.equal(firstUniforms.size, count);
});

// ---------------------------------------------------------------------------------------------------
// Order and batching invariance
// ---------------------------------------------------------------------------------------------------

test('element k does not depend on the length of out, on offsets, or on what was drawn before', () => {
  const s = new NoiseSource(5);
  const a = addr('mutate', 12, 3);
  const long = s.normals(a, new Float32Array(1000));
  s.normals(addr('mutate', 13, 3), new Float32Array(37)); // unrelated draw in between
  const short = s.normals(a, new Float32Array(10));
  assert.deepEqual(bits32(short), bits32(long.subarray(0, 10)));
  for (const [offset, len] of [[1, 1], [3, 2], [5, 11], [4, 8], [997, 3], [0, 1000]]) {
    const part = s.normals(a, new Float32Array(len), offset);
    assert.deepEqual(bits32(part), bits32(long.subarray(offset, offset + len)), `offset ${offset} len ${len}`);
  }
  const ulong = s.uniforms(a, new Float64Array(501));
  for (const [offset, len] of [[0, 1], [1, 1], [1, 2], [7, 100], [500, 1]]) {
    const part = s.uniforms(a, new Float64Array(len), offset);
    assert.deepEqual(bits64(part), bits64(ulong.subarray(offset, offset + len)), `uniform offset ${offset}`);
  }
  for (let i = 0; i < 501; i++) {
    assert.equal(s.uniform(a, i), ulong[i]);
    assert.equal(s.uniformInt(a, i, 10), Math.floor(ulong[i] * 10));
  }
});

test('a set of addresses drawn whole, in shuffled order, and in random chunks gives bit-identical arrays', () => {
  const rand = mulberry32(2024);
  const addresses: NoiseAddress[] = [];
  for (const purpose of NOISE_PURPOSES) {
    for (const lineage of [0, 1, 2 ** 32 - 1]) addresses.push(addr(purpose, lineage, lineage === 1 ? 2 ** 32 - 1 : 5));
  }
  const len = 1003;
  const seed = 0xfedcba9876543210n;
  const reference = new Map<NoiseAddress, Float32Array>();
  const referenceU = new Map<NoiseAddress, Float64Array>();
  const s0 = new NoiseSource(seed);
  for (const a of addresses) {
    reference.set(a, s0.normals(a, new Float32Array(len)));
    referenceU.set(a, s0.uniforms(a, new Float64Array(len)));
  }

  for (let trial = 0; trial < 4; trial++) {
    // A fresh source (another worker), addresses interleaved in shuffled order, each filled through
    // subarray views in chunks of random size, so chunk edges fall at every alignment mod 4.
    const s = new NoiseSource(seed);
    const outs = new Map(addresses.map((a) => [a, new Float32Array(len)] as const));
    const outsU = new Map(addresses.map((a) => [a, new Float64Array(len)] as const));
    const cursor = new Map<NoiseAddress, number>(addresses.map((a) => [a, 0]));
    let pending = shuffled(addresses, rand);
    while (pending.length > 0) {
      for (const a of pending) {
        const at = cursor.get(a)!;
        const n = Math.min(len - at, 1 + Math.floor(rand() * 60));
        s.normals(a, outs.get(a)!.subarray(at, at + n), at);
        s.uniforms(a, outsU.get(a)!.subarray(at, at + n), at);
        cursor.set(a, at + n);
      }
      pending = shuffled(pending.filter((a) => cursor.get(a)! < len), rand);
    }
    for (const a of addresses) {
      assert.deepEqual(bits32(outs.get(a)!), bits32(reference.get(a)!), JSON.stringify(a));
      assert.deepEqual(bits64(outsU.get(a)!), bits64(referenceU.get(a)!), JSON.stringify(a));
    }
  }
});

test('a seed given as a number or as a bigint names the same streams', () => {
  const a = addr('init', 9, 0);
  for (const seed of [0, 1, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    const x = new NoiseSource(seed).normals(a, new Float32Array(16));
    const y = new NoiseSource(BigInt(seed)).normals(a, new Float32Array(16));
    assert.deepEqual(bits32(x), bits32(y), `seed ${seed}`);
  }
});

// ---------------------------------------------------------------------------------------------------
// Unhappy paths
// ---------------------------------------------------------------------------------------------------

test('bad seeds are rejected with a NoiseAddressError naming the seed', () => {
  expectAddressError(() => new NoiseSource(-1), 'seed', '-1');
  expectAddressError(() => new NoiseSource(1.5), 'seed', '1.5');
  expectAddressError(() => new NoiseSource(Number.NaN), 'seed', 'NaN');
  expectAddressError(() => new NoiseSource(2 ** 53), 'seed', '9007199254740992');
  expectAddressError(() => new NoiseSource(-1n), 'seed', '-1n');
  expectAddressError(() => new NoiseSource(1n << 64n), 'seed', '18446744073709551616n');
  expectAddressError(() => new NoiseSource('5' as unknown as number), 'seed', '"5"');
  assert.doesNotThrow(() => new NoiseSource((1n << 64n) - 1n));
});

test('bad addresses and ranges are rejected with a NoiseAddressError naming the field', () => {
  const s = new NoiseSource(3);
  const out = new Float32Array(4);
  const outU = new Float64Array(4);
  const bad = (a: object) => a as NoiseAddress;
  expectAddressError(() => s.normals(addr('init', -1, 0), out), 'lineage', '-1');
  expectAddressError(() => s.normals(addr('init', 0.5, 0), out), 'lineage', '0.5');
  expectAddressError(() => s.normals(addr('init', 2 ** 32, 0), out), 'lineage', '4294967296');
  expectAddressError(() => s.uniforms(addr('select', 0, -3), outU), 'step', '-3');
  expectAddressError(() => s.uniforms(addr('select', 0, Number.NaN), outU), 'step', 'NaN');
  expectAddressError(() => s.normals(bad({ purpose: 'warp', lineage: 0, step: 0 }), out), 'purpose', '"warp"');
  expectAddressError(() => s.uniform(bad({ lineage: 0, step: 0 }), 0), 'purpose', 'undefined');
  expectAddressError(() => s.normals(null as unknown as NoiseAddress, out), 'address', 'null');
  expectAddressError(() => s.normals(addr('init', 0, 0), out, -1), 'offset', '-1');
  expectAddressError(() => s.normals(addr('init', 0, 0), out, 2 ** 34 - 3), 'offset', String(2 ** 34 - 3));
  expectAddressError(() => s.uniform(addr('select', 0, 0), 2 ** 33), 'index', String(2 ** 33));
  expectAddressError(() => s.uniformInt(addr('select', 0, 0), 0, 0), 'n', '0');
  // The last elements of a stream are reachable.
  assert.doesNotThrow(() => s.normals(addr('init', 2 ** 32 - 1, 2 ** 32 - 1), out, 2 ** 34 - 4));
});
