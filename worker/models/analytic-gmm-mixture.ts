/**
 * The data distribution of the analytic model: p(x0) = sum_k w_k N(mu_k, s^2 I) in dimension d, and
 * everything about it that has a closed form under the forward process x_t = a x0 + b eps:
 *
 *   p_t(x)         = sum_k w_k N(x; a mu_k, v I),          v = a^2 s^2 + b^2
 *   r_k(x)         = w_k N(x; a mu_k, v I) / p_t(x)        (posterior responsibility of mode k)
 *   E[x0 | x_t=x]  = sum_k r_k (mu_k + (a s^2 / v)(x - a mu_k))
 *   E[eps | x_t=x] = (b / v) sum_k r_k (x - a mu_k)  = -b grad log p_t(x)
 *
 * The last line is (x - a E[x0|x]) / b with the b^2 / v factor simplified out, which is what keeps it
 * finite (and exactly 0) at b = 0. All log densities go through log-sum-exp, so responsibilities stay
 * exact at b -> 0 (sharp modes) and a -> 0 (all modes equal).
 *
 * Mode 0 is the rare mode. The centres are drawn from the config's seed with a small PRNG of this file:
 * building the model is not search noise, so it does not use the run's addressed NoiseSource.
 */
import type { AnalyticGmmConfig } from './analytic-gmm-config.js';

const LOG_2PI = Math.log(2 * Math.PI);
/** Candidates per centre in Mitchell's best-candidate draw (more spreads the centres more evenly). */
const CENTRE_CANDIDATES = 32;

/** Uniforms in [0, 1). */
export type UniformSource = () => number;

/** murmur3's 32-bit finaliser: spreads nearby seeds apart before they seed mulberry32. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A tiny deterministic PRNG (mulberry32) for model construction and for tests and demos. `stream`
 * separates independent uses of the same seed (the centres, the reward's target offset, ...).
 * Not for search noise: that must come from random/noise-source.ts so every draw has an address.
 */
export function seededUniform(seed: number, stream = 0): UniformSource {
  let state = fmix32(fmix32((seed % 4294967296) ^ fmix32(Math.floor(seed / 4294967296) + 0x9e3779b9)) ^ fmix32(stream + 0x7f4a7c15));
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One standard normal by Box-Muller (1 - u keeps log away from 0). */
export function standardNormal(rng: UniformSource): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

export class GaussianMixture {
  readonly dimension: number;
  readonly modes: number;
  readonly modeStd: number;
  /** Index of the rare mode. */
  readonly rareMode = 0;
  /** w_k. */
  readonly weights: Float64Array;
  readonly logWeights: Float64Array;
  /** mu_k laid out back to back: centre k is centres[k*d .. (k+1)*d). */
  readonly centres: Float64Array;
  /** Smallest distance between two centres, in units of modeStd: how cleanly modes can be told apart. */
  readonly minCentreDistanceInStd: number;
  /** Scratch for the public single-sample methods (no allocation per call). */
  private readonly xScratch: Float64Array;
  private readonly logitScratch: Float64Array;

  constructor(config: AnalyticGmmConfig) {
    const d = config.dimension;
    const K = config.modes;
    this.dimension = d;
    this.modes = K;
    this.modeStd = config.modeStd;
    this.weights = new Float64Array(K);
    this.weights.fill((1 - config.rareWeight) / (K - 1));
    this.weights[this.rareMode] = config.rareWeight;
    this.logWeights = this.weights.map(Math.log);
    this.centres = drawCentres(d, K, config.separation / Math.SQRT2, seededUniform(config.seed, 0));
    let minDistance = Infinity;
    for (let j = 0; j < K; j++) for (let k = j + 1; k < K; k++) minDistance = Math.min(minDistance, Math.sqrt(squaredDistance(this.centres, j * d, this.centres, k * d, d)));
    this.minCentreDistanceInStd = minDistance / config.modeStd;
    this.xScratch = new Float64Array(d);
    this.logitScratch = new Float64Array(K);
  }

  /** w_k as a plain array (mode 0 is the rare one). */
  modeWeights(): number[] {
    return Array.from(this.weights);
  }

  /** A copy of mu_k. */
  centre(k: number): Float64Array {
    this.checkMode(k);
    return this.centres.slice(k * this.dimension, (k + 1) * this.dimension);
  }

  /**
   * Writes log w_k + log N(x; a mu_k, v I) minus its max over k into `logits`, for x in `x`
   * (Float64Array, at `offset`); returns the max. Shared by the denoiser's inner loop.
   */
  modeLogits(x: Float64Array, offset: number, a: number, v: number, logits: Float64Array): number {
    const d = this.dimension;
    const centres = this.centres;
    const inv2v = 1 / (2 * v);
    let max = -Infinity;
    for (let k = 0; k < this.modes; k++) {
      let sq = 0;
      const base = k * d;
      for (let i = 0; i < d; i++) {
        const diff = x[offset + i] - a * centres[base + i];
        sq += diff * diff;
      }
      const logit = this.logWeights[k] - sq * inv2v;
      logits[k] = logit;
      if (logit > max) max = logit;
    }
    // The Gaussian normaliser -d/2 log(2 pi v) is the same for every k: it cancels in r_k and is added
    // back only where a density is asked for.
    return max;
  }

  /** Turns the output of modeLogits into responsibilities in place; returns log sum_k exp(logit_k). */
  static normaliseLogits(logits: Float64Array, max: number, modes: number): number {
    let sum = 0;
    for (let k = 0; k < modes; k++) {
      const e = Math.exp(logits[k] - max);
      logits[k] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let k = 0; k < modes; k++) logits[k] *= inv;
    return max + Math.log(sum);
  }

  /** log p_t(x) for the noised marginal at (a, b). With a = 1, b = 0 it is log p(x0). */
  noisedLogDensity(x: ArrayLike<number>, a: number, b: number, offset = 0): number {
    const v = noisedVariance(a, b, this.modeStd);
    const xs = this.load(x, offset);
    const max = this.modeLogits(xs, 0, a, v, this.logitScratch);
    const lse = GaussianMixture.normaliseLogits(this.logitScratch, max, this.modes);
    return lse - 0.5 * this.dimension * (LOG_2PI + Math.log(v));
  }

  /** log p(x0) under the mixture. */
  logDensity(x: ArrayLike<number>, offset = 0): number {
    return this.noisedLogDensity(x, 1, 0, offset);
  }

  /** r_k(x) at (a, b), written to `out` (length >= modes). */
  responsibilities(x: ArrayLike<number>, a: number, b: number, out: Float64Array, offset = 0): Float64Array {
    if (out.length < this.modes) throw new RangeError(`responsibilities: out holds ${out.length}, needs ${this.modes}`);
    const v = noisedVariance(a, b, this.modeStd);
    const xs = this.load(x, offset);
    const max = this.modeLogits(xs, 0, a, v, out);
    GaussianMixture.normaliseLogits(out, max, this.modes);
    return out;
  }

  /**
   * The mode x0 most likely came from: argmax_k of the posterior at b = 0 (so the weights count, not
   * only the distance). Ties go to the lower index.
   */
  classifyMode(x: ArrayLike<number>, offset = 0): number {
    const xs = this.load(x, offset);
    const logits = this.logitScratch;
    this.modeLogits(xs, 0, 1, this.modeStd * this.modeStd, logits);
    let best = 0;
    for (let k = 1; k < this.modes; k++) if (logits[k] > logits[best]) best = k;
    return best;
  }

  /**
   * n exact samples from p(x0), back to back in a Float32Array (the latent layout). `modesOut`, when
   * given, receives the mode each sample was drawn from.
   */
  sampleData(n: number, rng: UniformSource, modesOut?: Int32Array): Float32Array {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`sampleData: n must be a non-negative integer, got ${n}`);
    if (modesOut !== undefined && modesOut.length < n) throw new RangeError(`sampleData: modesOut holds ${modesOut.length}, needs ${n}`);
    const d = this.dimension;
    const out = new Float32Array(n * d);
    for (let j = 0; j < n; j++) {
      const k = this.drawMode(rng());
      if (modesOut !== undefined) modesOut[j] = k;
      for (let i = 0; i < d; i++) out[j * d + i] = this.centres[k * d + i] + this.modeStd * standardNormal(rng);
    }
    return out;
  }

  /** Inverse CDF of the mode weights. */
  private drawMode(u: number): number {
    let acc = 0;
    for (let k = 0; k < this.modes - 1; k++) {
      acc += this.weights[k];
      if (u < acc) return k;
    }
    return this.modes - 1;
  }

  private load(x: ArrayLike<number>, offset: number): Float64Array {
    const d = this.dimension;
    if (!Number.isInteger(offset) || offset < 0 || offset + d > x.length) {
      throw new RangeError(`GaussianMixture: need ${d} values at offset ${offset}, the array holds ${x.length}`);
    }
    const xs = this.xScratch;
    for (let i = 0; i < d; i++) xs[i] = x[offset + i];
    return xs;
  }

  private checkMode(k: number): void {
    if (!Number.isInteger(k) || k < 0 || k >= this.modes) throw new RangeError(`mode must be an integer in [0, ${this.modes - 1}], got ${k}`);
  }
}

/**
 * v = a^2 s^2 + b^2, the per-coordinate variance of every noised component. Rejects times that do not
 * describe a forward process (negative or non-finite scales, or a = b = 0 where x_t carries nothing).
 */
export function noisedVariance(a: number, b: number, s: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || a < 0 || b < 0) {
    throw new RangeError(`analytic model: step time needs finite signalScale >= 0 and noiseScale >= 0, got a = ${a}, b = ${b}`);
  }
  const v = a * a * s * s + b * b;
  if (!(v > 0)) throw new RangeError(`analytic model: signalScale and noiseScale are both 0 (a = ${a}, b = ${b}): x_t carries no signal and no noise`);
  return v;
}

function squaredDistance(x: Float64Array, xo: number, y: Float64Array, yo: number, d: number): number {
  let sq = 0;
  for (let i = 0; i < d; i++) {
    const diff = x[xo + i] - y[yo + i];
    sq += diff * diff;
  }
  return sq;
}

/**
 * K centres on the sphere of radius R: the first uniformly at random, each next one the best of
 * CENTRE_CANDIDATES uniform candidates (the one farthest from its nearest chosen centre, Mitchell's
 * algorithm). Independent uniform draws can land two centres close together by bad luck; this keeps them
 * spread (in d = 8 with 4 modes the centres come out close to mutually orthogonal) while staying a pure
 * function of the seed.
 */
function drawCentres(d: number, K: number, R: number, rng: UniformSource): Float64Array {
  const centres = new Float64Array(K * d);
  const candidate = new Float64Array(d);
  const best = new Float64Array(d);
  for (let k = 0; k < K; k++) {
    let bestScore = -1;
    const tries = k === 0 ? 1 : CENTRE_CANDIDATES;
    for (let c = 0; c < tries; c++) {
      let norm = 0;
      do {
        norm = 0;
        for (let i = 0; i < d; i++) {
          candidate[i] = standardNormal(rng);
          norm += candidate[i] * candidate[i];
        }
      } while (norm === 0);
      const scale = R / Math.sqrt(norm);
      for (let i = 0; i < d; i++) candidate[i] *= scale;
      let nearest = Infinity;
      for (let j = 0; j < k; j++) nearest = Math.min(nearest, squaredDistance(candidate, 0, centres, j * d, d));
      if (nearest > bestScore) {
        bestScore = nearest;
        best.set(candidate);
      }
    }
    centres.set(best, k * d);
  }
  return centres;
}
