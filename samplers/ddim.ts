/**
 * DDIM (Song et al., arXiv 2010.02502) as diffusers' DDIMScheduler.step computes it, for epsilon and
 * v_prediction models, with eta in [0, 1] and the noise supplied by the caller (diffusers' variance_noise).
 *
 *   prev_t     = t - T // N                       (diffusers' rule, also for trailing/linspace spacing)
 *   a_prev     = alphas_cumprod[prev_t] if prev_t >= 0 else final_alpha_cumprod
 *   x0, eps    = from the model output (vp-prediction.ts), x0 optionally clipped
 *   variance   = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev);  std = eta * sqrt(variance)
 *   x_prev     = sqrt(a_prev) * x0 + sqrt(1 - a_prev - std^2) * eps + std * noise
 *
 * final_alpha_cumprod is 1 with set_alpha_to_one, else alphas_cumprod[0].
 *
 * time(i) for i < N is the alpha of timesteps[i] (what diffusers feeds the network and converts with);
 * time(N) is the alpha the last step lands on (final_alpha_cumprod, or alphas_cumprod[prev_t] in the rare
 * case prev_t >= 0), with timestep prev_t, or -1 when final_alpha_cumprod is used. With leading spacing the
 * landing alpha of step i equals the alpha of timesteps[i + 1]; with trailing or linspace spacing and
 * T % N != 0 diffusers' prev_t rule makes them differ slightly, and this sampler keeps diffusers' behaviour.
 */
import type { Sampler, SolverMemory, StepTime } from './sampler.js';
import type { ResolvedDdimConfig, VpPredictionType } from './sampler-config.js';
import { buildVpSchedule, vpTime } from './vp-schedule.js';
import { vpPredictX0 } from './vp-prediction.js';
import { checkLengths, checkStepIndex, requireNoise } from './sampler-step-error.js';

interface DdimStepCoefficients {
  readonly alphaProd: number;
  readonly alphaProdPrev: number;
  readonly prevTimestep: number;
  readonly std: number;
}

export class DdimSampler implements Sampler {
  readonly steps: number;
  readonly prediction: VpPredictionType;
  readonly timesteps: readonly number[];
  readonly eta: number;
  private readonly clip: number | null;
  private readonly useClippedModelOutput: boolean;
  private readonly coefficients: readonly DdimStepCoefficients[];
  private readonly times: readonly StepTime[];

  constructor(config: ResolvedDdimConfig) {
    const { alphasCumprod: acp, timesteps } = buildVpSchedule(config);
    this.steps = config.steps;
    this.prediction = config.prediction_type;
    this.timesteps = Object.freeze(timesteps.slice());
    this.eta = config.eta;
    this.clip = config.clip_sample ? config.clip_sample_range : null;
    this.useClippedModelOutput = config.use_clipped_model_output;
    const finalAlphaCumprod = config.set_alpha_to_one ? 1 : acp[0];
    const stride = Math.floor(config.num_train_timesteps / config.steps);
    const coefficients: DdimStepCoefficients[] = [];
    const times: StepTime[] = [];
    for (const t of timesteps) {
      const prevTimestep = t - stride;
      const alphaProd = acp[t];
      const alphaProdPrev = prevTimestep >= 0 ? acp[prevTimestep] : finalAlphaCumprod;
      // DDIMScheduler._get_variance
      const variance = ((1 - alphaProdPrev) / (1 - alphaProd)) * (1 - alphaProd / alphaProdPrev);
      coefficients.push({ alphaProd, alphaProdPrev, prevTimestep, std: config.eta * Math.sqrt(variance) });
      times.push(vpTime(t, alphaProd));
    }
    const last = coefficients[coefficients.length - 1];
    times.push(vpTime(last.prevTimestep >= 0 ? last.prevTimestep : -1, last.alphaProdPrev));
    this.coefficients = coefficients;
    this.times = times;
  }

  time(index: number): StepTime {
    checkStepIndex('DdimSampler.time', index, this.steps + 1);
    return this.times[index];
  }

  /** diffusers adds noise on every step when eta > 0. */
  isStochastic(index: number): boolean {
    checkStepIndex('DdimSampler.isStochastic', index, this.steps);
    return this.eta > 0;
  }

  noiseStd(index: number): number {
    checkStepIndex('DdimSampler.noiseStd', index, this.steps);
    return this.coefficients[index].std;
  }

  step(index: number, sample: Float32Array, modelOutput: Float32Array, noise: Float32Array | null, out: Float32Array, _memory: SolverMemory): void {
    checkStepIndex('DdimSampler.step', index, this.steps);
    const stochastic = this.eta > 0;
    const z = stochastic ? requireNoise('DdimSampler.step', index, noise) : null;
    checkLengths('DdimSampler.step', sample, { modelOutput, noise: z, out });
    const { alphaProd, alphaProdPrev, std } = this.coefficients[index];
    const sqrtA = Math.sqrt(alphaProd);
    const sqrtB = Math.sqrt(1 - alphaProd);
    const sqrtAPrev = Math.sqrt(alphaProdPrev);
    // >= 0 in exact arithmetic for eta <= 1; the clamp only keeps a rounding residue from becoming NaN.
    const direction = Math.sqrt(Math.max(0, 1 - alphaProdPrev - std * std));
    const lo = this.clip === null ? -Infinity : -this.clip;
    const hi = this.clip === null ? Infinity : this.clip;
    const epsilonModel = this.prediction === 'epsilon';
    const reEps = this.useClippedModelOutput;
    const n = sample.length;
    for (let k = 0; k < n; k++) {
      const x = sample[k];
      const m = modelOutput[k];
      let x0: number;
      let eps: number;
      if (epsilonModel) {
        x0 = (x - sqrtB * m) / sqrtA;
        eps = m;
      } else {
        x0 = sqrtA * x - sqrtB * m;
        eps = sqrtA * m + sqrtB * x;
      }
      if (x0 < lo) x0 = lo;
      else if (x0 > hi) x0 = hi;
      if (reEps) eps = (x - sqrtA * x0) / sqrtB;
      let prev = sqrtAPrev * x0 + direction * eps;
      if (z !== null) prev += std * z[k];
      out[k] = prev;
    }
  }

  predictX0(index: number, sample: Float32Array, modelOutput: Float32Array, out: Float32Array): void {
    checkStepIndex('DdimSampler.predictX0', index, this.steps);
    checkLengths('DdimSampler.predictX0', sample, { modelOutput, out });
    vpPredictX0(this.prediction, this.coefficients[index].alphaProd, this.clip, sample, modelOutput, out);
  }
}
