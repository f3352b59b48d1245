/**
 * Rewards of the analytic model. The guidance reward asks for something the prior rarely gives (the
 * rare mode) and leaves room to improve inside it, so search has a measurable job; the held-out metrics
 * say whether it did the job honestly (landed in the rare mode, on the data manifold) rather than by
 * gaming the guidance reward. Held-out metrics are never used for guidance.
 */
import type { RewardModel } from './generator.js';
import { GaussianMixture, seededUniform, standardNormal } from './analytic-gmm-mixture.js';

export const RARE_MODE_AFFINITY = 'rare-mode-affinity';
export const RARE_MODE_HIT = 'rare-mode-hit';
export const LOG_DENSITY = 'log-density';

/** PRNG stream of the target offset (stream 0 draws the centres). */
const TARGET_STREAM = 1;

function checkBatch(name: string, samples: Float32Array, batch: number, out: Float64Array, d: number): void {
  if (!Number.isInteger(batch) || batch < 0) throw new RangeError(`${name}: batch must be a non-negative integer, got ${batch}`);
  if (samples.length < batch * d) throw new RangeError(`${name}: ${batch} samples of ${d} need ${batch * d} floats, got ${samples.length}`);
  if (out.length < batch) throw new RangeError(`${name}: out holds ${out.length} scores, needs ${batch}`);
}

/**
 * Guidance reward r(x) = -|x - c|^2 / d, where the target c = mu_rare + s u for a fixed unit vector u
 * drawn from the model seed. c sits one mode-std off the rare centre, well inside the rare mode (a
 * typical rare sample is s sqrt(d) from its centre), so:
 * - the best achievable reward is 0, at x = c, a point of high density;
 * - a typical rare-mode sample scores -s^2 (1 + 1/d) (about -0.07 with the defaults) and a common-mode
 *   one about -(|mu_k - c|^2 + d s^2) / d (about -1.2): finding the rare mode is the big win, and search
 *   can still improve within it.
 * Dividing by d keeps the scale independent of the dimension. It is unbounded below, which is harmless:
 * selection only compares rewards.
 */
export class RareModeAffinity implements RewardModel {
  readonly name = RARE_MODE_AFFINITY;
  /** The target point c. */
  readonly target: Float64Array;
  /** max_x r(x) = 0, attained at the target. */
  readonly best = 0;

  constructor(
    private readonly mixture: GaussianMixture,
    seed: number,
  ) {
    const d = mixture.dimension;
    const rng = seededUniform(seed, TARGET_STREAM);
    const u = new Float64Array(d);
    let norm = 0;
    do {
      norm = 0;
      for (let i = 0; i < d; i++) {
        u[i] = standardNormal(rng);
        norm += u[i] * u[i];
      }
    } while (norm === 0);
    const scale = mixture.modeStd / Math.sqrt(norm);
    this.target = mixture.centre(mixture.rareMode).map((m, i) => m + scale * u[i]);
  }

  score(samples: Float32Array, batch: number, out: Float64Array): void {
    const d = this.mixture.dimension;
    checkBatch(this.name, samples, batch, out, d);
    const c = this.target;
    for (let j = 0; j < batch; j++) {
      let sq = 0;
      const base = j * d;
      for (let i = 0; i < d; i++) {
        const diff = samples[base + i] - c[i];
        sq += diff * diff;
      }
      out[j] = -sq / d;
    }
  }

  /** E[r(x0)] for x0 ~ N(mu_k, s^2 I): -(|mu_k - c|^2 + d s^2) / d. */
  expectedForMode(k: number): number {
    const mu = this.mixture.centre(k);
    const d = this.mixture.dimension;
    let sq = 0;
    for (let i = 0; i < d; i++) sq += (mu[i] - this.target[i]) ** 2;
    return -(sq + d * this.mixture.modeStd ** 2) / d;
  }
}

/** Held out: 1 when the sample's most probable mode (posterior at b = 0) is the rare one, else 0. */
export class RareModeHit implements RewardModel {
  readonly name = RARE_MODE_HIT;
  constructor(private readonly mixture: GaussianMixture) {}

  score(samples: Float32Array, batch: number, out: Float64Array): void {
    const d = this.mixture.dimension;
    checkBatch(this.name, samples, batch, out, d);
    for (let j = 0; j < batch; j++) out[j] = this.mixture.classifyMode(samples, j * d) === this.mixture.rareMode ? 1 : 0;
  }
}

/** Held out: log p(x0) under the mixture (catches samples pushed off the data manifold). */
export class MixtureLogDensity implements RewardModel {
  readonly name = LOG_DENSITY;
  constructor(private readonly mixture: GaussianMixture) {}

  score(samples: Float32Array, batch: number, out: Float64Array): void {
    const d = this.mixture.dimension;
    checkBatch(this.name, samples, batch, out, d);
    for (let j = 0; j < batch; j++) out[j] = this.mixture.logDensity(samples, j * d);
  }
}
