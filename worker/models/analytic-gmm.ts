/**
 * The analytic generative model: a Gaussian mixture whose denoiser is the exact posterior mean (see
 * analytic-gmm-mixture.ts for the formulas), an identity decoder, and rewards that favour the rare mode.
 * It stands in for a real diffusion or flow network wherever the search, the samplers or the cluster
 * must be tested or demonstrated without weights: it is exact, so a sampler bias or a search bug shows
 * up as a measurable deviation instead of hiding in network error, and it costs microseconds per NFE.
 *
 *   createAnalyticModel('analytic:gmm')
 *   createAnalyticModel('analytic:gmm?dimension=16&modes=5&prediction=flow')
 *   createAnalyticModel({ modes: 6, rareWeight: 0.02 })
 */
import type { PredictionType, StepTime } from '../../samplers/sampler.js';
import type { Decoder, Denoiser, GenerativeModel, RewardModel } from './generator.js';
import {
  type AnalyticGmmConfig,
  formatAnalyticModelSpec,
  parseAnalyticModelSpec,
  resolveAnalyticGmmConfig,
} from './analytic-gmm-config.js';
import { GaussianMixture, noisedVariance, type UniformSource } from './analytic-gmm-mixture.js';
import { MixtureLogDensity, RareModeAffinity, RareModeHit } from './analytic-gmm-rewards.js';

function checkBuffers(who: string, input: Float32Array, batch: number, out: Float32Array, size: number): void {
  if (!Number.isInteger(batch) || batch < 0) throw new RangeError(`${who}: batch must be a non-negative integer, got ${batch}`);
  const need = batch * size;
  if (input.length < need) throw new RangeError(`${who}: ${batch} latents of ${size} need ${need} floats, input holds ${input.length}`);
  if (out.length < need) throw new RangeError(`${who}: ${batch} latents of ${size} need ${need} floats, out holds ${out.length}`);
}

/**
 * The closed-form denoiser. Per latent: responsibilities r_k, then with m = sum_k r_k mu_k and
 * g = x - a m = sum_k r_k (x - a mu_k):
 *   x0hat = m + (a s^2 / v) g,   eps = (b / v) g,
 * and the requested parameterisation from those two:
 *   epsilon: eps;  v_prediction: a eps - b x0hat;  flow: eps - x0hat.
 * At b = 0 (the clean end of a flow schedule) eps is exactly 0 and x0hat = x / a: the sample is its own
 * clean estimate, which is the limit of the posterior, not a special case.
 *
 * Math in double; one latent's inputs are copied to scratch before its output is written, so `out` may
 * alias `latents`. Scratch is allocated once per denoiser, none per call or per element.
 */
export class AnalyticGmmDenoiser implements Denoiser {
  readonly latentSize: number;
  readonly latentShape: readonly number[];
  readonly forwardPassesPerNfe = 1;
  private readonly x: Float64Array;
  private readonly r: Float64Array;

  constructor(
    readonly mixture: GaussianMixture,
    readonly prediction: PredictionType,
  ) {
    this.latentSize = mixture.dimension;
    this.latentShape = Object.freeze([mixture.dimension]);
    this.x = new Float64Array(mixture.dimension);
    this.r = new Float64Array(mixture.modes);
  }

  predict(latents: Float32Array, batch: number, time: StepTime, out: Float32Array): void {
    const d = this.latentSize;
    checkBuffers('analytic denoiser', latents, batch, out, d);
    const a = time.signalScale;
    const b = time.noiseScale;
    const mix = this.mixture;
    const s2 = mix.modeStd * mix.modeStd;
    const v = noisedVariance(a, b, mix.modeStd);
    const x0Gain = (a * s2) / v;
    const epsGain = b / v;
    const K = mix.modes;
    const centres = mix.centres;
    const { x, r } = this;
    const prediction = this.prediction;
    for (let j = 0; j < batch; j++) {
      const base = j * d;
      for (let i = 0; i < d; i++) x[i] = latents[base + i];
      const max = mix.modeLogits(x, 0, a, v, r);
      GaussianMixture.normaliseLogits(r, max, K);
      for (let i = 0; i < d; i++) {
        let m = 0;
        for (let k = 0; k < K; k++) m += r[k] * centres[k * d + i];
        const g = x[i] - a * m;
        const x0hat = m + x0Gain * g;
        const eps = epsGain * g;
        out[base + i] = prediction === 'epsilon' ? eps : prediction === 'v_prediction' ? a * eps - b * x0hat : eps - x0hat;
      }
    }
  }
}

/** The analytic model has no latent space of its own: sample = latent, shape [d]. */
export class IdentityDecoder implements Decoder {
  readonly sampleShape: readonly number[];
  constructor(readonly sampleSize: number) {
    this.sampleShape = Object.freeze([sampleSize]);
  }

  decode(latents: Float32Array, batch: number, out: Float32Array): void {
    checkBuffers('identity decoder', latents, batch, out, this.sampleSize);
    const n = batch * this.sampleSize;
    if (out !== latents) out.set(latents.subarray(0, n));
  }
}

/** The analytic model, with the helpers tests and demos use to judge what a sampler or a search produced. */
export class AnalyticGmmModel implements GenerativeModel {
  /** The canonical spec: every config field spelled out. */
  readonly id: string;
  readonly mixture: GaussianMixture;
  readonly denoiser: AnalyticGmmDenoiser;
  readonly decoder: IdentityDecoder;
  /** The guidance reward (also rewards[0]). */
  readonly guidance: RareModeAffinity;
  /** [rare-mode-affinity (guidance), rare-mode-hit, log-density]. */
  readonly rewards: readonly RewardModel[];

  constructor(readonly config: AnalyticGmmConfig) {
    this.id = formatAnalyticModelSpec(config);
    this.mixture = new GaussianMixture(config);
    this.denoiser = new AnalyticGmmDenoiser(this.mixture, config.prediction);
    this.decoder = new IdentityDecoder(config.dimension);
    this.guidance = new RareModeAffinity(this.mixture, config.seed);
    this.rewards = Object.freeze([this.guidance, new RareModeHit(this.mixture), new MixtureLogDensity(this.mixture)]);
  }

  /** n exact samples from p(x0), back to back; `modesOut` receives each sample's mode. */
  sampleData(n: number, rng: UniformSource, modesOut?: Int32Array): Float32Array {
    return this.mixture.sampleData(n, rng, modesOut);
  }

  /** Most probable mode of x (posterior at b = 0); the sample starts at `offset`. */
  classifyMode(x: ArrayLike<number>, offset = 0): number {
    return this.mixture.classifyMode(x, offset);
  }

  /** w_k; mode `rareMode` (0) is the rare one. */
  modeWeights(): number[] {
    return this.mixture.modeWeights();
  }

  get rareMode(): number {
    return this.mixture.rareMode;
  }

  /** The best guidance reward any sample can get (0, at the target point). */
  get bestGuidanceReward(): number {
    return this.guidance.best;
  }
}

/** Builds the analytic model from a spec string (`analytic:gmm?...`) or a (partial) config object. */
export function createAnalyticModel(spec: string | Partial<AnalyticGmmConfig> = {}): AnalyticGmmModel {
  const config = typeof spec === 'string' ? parseAnalyticModelSpec(spec) : resolveAnalyticGmmConfig(spec);
  return new AnalyticGmmModel(config);
}

export { AnalyticModelConfigError, ANALYTIC_GMM_DEFAULTS, type AnalyticGmmConfig } from './analytic-gmm-config.js';
export { GaussianMixture, seededUniform, type UniformSource } from './analytic-gmm-mixture.js';
export { RARE_MODE_AFFINITY, RARE_MODE_HIT, LOG_DENSITY } from './analytic-gmm-rewards.js';
