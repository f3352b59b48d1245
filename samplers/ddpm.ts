/**
 * DDPM ancestral sampling (Ho et al., arXiv 2006.11239) as diffusers' DDPMScheduler.step computes it with
 * variance_type 'fixed_small', for epsilon and v_prediction models, with the standard normal supplied by
 * the caller (what the scheduler would draw with randn_tensor).
 *
 *   prev_t       = the next inference timestep, or -1 after the last (DDPMScheduler.previous_timestep,
 *                  which uses the timestep list once set_timesteps has run, so N < T skips correctly)
 *   a_prev       = alphas_cumprod[prev_t] if prev_t >= 0 else 1
 *   alpha_t      = a_t / a_prev,  beta_t = 1 - alpha_t
 *   x_prev       = sqrt(a_prev) beta_t / (1 - a_t) * x0 + sqrt(alpha_t) (1 - a_prev) / (1 - a_t) * x
 *                  + sqrt(max(variance, 1e-20)) * noise   (only while t > 0)
 *   variance     = (1 - a_prev) / (1 - a_t) * beta_t
 *
 * The clamp to 1e-20 is diffusers' (_get_variance takes logs elsewhere): on the last step, where a_prev = 1
 * and the variance is 0, diffusers still adds 1e-10 * noise, so that step counts as stochastic here too.
 *
 * time(N) is the clean sample: timestep -1 (diffusers' prev_t), signalScale 1, noiseScale 0.
 */
import type { Sampler, SolverMemory, StepTime } from './sampler.js';
import type { ResolvedDdpmConfig, VpPredictionType } from './sampler-config.js';
import { buildVpSchedule, vpTime } from './vp-schedule.js';
import { vpPredictX0 } from './vp-prediction.js';
import { checkLengths, checkStepIndex, requireNoise } from './sampler-step-error.js';

interface DdpmStepCoefficients {
  readonly alphaProd: number;
  readonly x0Coeff: number;
  readonly sampleCoeff: number;
  /** 0 when t == 0 (diffusers adds no noise there). */
  readonly std: number;
}

export class DdpmSampler implements Sampler {
  readonly steps: number;
  readonly prediction: VpPredictionType;
  readonly timesteps: readonly number[];
  private readonly clip: number | null;
  private readonly coefficients: readonly DdpmStepCoefficients[];
  private readonly times: readonly StepTime[];

  constructor(config: ResolvedDdpmConfig) {
    const { alphasCumprod: acp, timesteps } = buildVpSchedule(config);
    this.steps = config.steps;
    this.prediction = config.prediction_type;
    this.timesteps = Object.freeze(timesteps.slice());
    this.clip = config.clip_sample ? config.clip_sample_range : null;
    const coefficients: DdpmStepCoefficients[] = [];
    const times: StepTime[] = [];
    timesteps.forEach((t, i) => {
      const prevT = i + 1 < timesteps.length ? timesteps[i + 1] : -1;
      const alphaProd = acp[t];
      const alphaProdPrev = prevT >= 0 ? acp[prevT] : 1;
      const betaProd = 1 - alphaProd;
      const betaProdPrev = 1 - alphaProdPrev;
      const currentAlpha = alphaProd / alphaProdPrev;
      const currentBeta = 1 - currentAlpha;
      const variance = Math.max((betaProdPrev / betaProd) * currentBeta, 1e-20);
      coefficients.push({
        alphaProd,
        x0Coeff: (Math.sqrt(alphaProdPrev) * currentBeta) / betaProd,
        sampleCoeff: (Math.sqrt(currentAlpha) * betaProdPrev) / betaProd,
        std: t > 0 ? Math.sqrt(variance) : 0,
      });
      times.push(vpTime(t, alphaProd));
    });
    times.push(vpTime(-1, 1));
    this.coefficients = coefficients;
    this.times = times;
  }

  time(index: number): StepTime {
    checkStepIndex('DdpmSampler.time', index, this.steps + 1);
    return this.times[index];
  }

  isStochastic(index: number): boolean {
    checkStepIndex('DdpmSampler.isStochastic', index, this.steps);
    return this.coefficients[index].std > 0;
  }

  noiseStd(index: number): number {
    checkStepIndex('DdpmSampler.noiseStd', index, this.steps);
    return this.coefficients[index].std;
  }

  step(index: number, sample: Float32Array, modelOutput: Float32Array, noise: Float32Array | null, out: Float32Array, _memory: SolverMemory): void {
    checkStepIndex('DdpmSampler.step', index, this.steps);
    const { alphaProd, x0Coeff, sampleCoeff, std } = this.coefficients[index];
    const z = std > 0 ? requireNoise('DdpmSampler.step', index, noise) : null;
    checkLengths('DdpmSampler.step', sample, { modelOutput, noise: z, out });
    const sqrtA = Math.sqrt(alphaProd);
    const sqrtB = Math.sqrt(1 - alphaProd);
    const lo = this.clip === null ? -Infinity : -this.clip;
    const hi = this.clip === null ? Infinity : this.clip;
    const epsilonModel = this.prediction === 'epsilon';
    const n = sample.length;
    for (let k = 0; k < n; k++) {
      const x = sample[k];
      const m = modelOutput[k];
      let x0 = epsilonModel ? (x - sqrtB * m) / sqrtA : sqrtA * x - sqrtB * m;
      if (x0 < lo) x0 = lo;
      else if (x0 > hi) x0 = hi;
      let prev = x0Coeff * x0 + sampleCoeff * x;
      if (z !== null) prev += std * z[k];
      out[k] = prev;
    }
  }

  predictX0(index: number, sample: Float32Array, modelOutput: Float32Array, out: Float32Array): void {
    checkStepIndex('DdpmSampler.predictX0', index, this.steps);
    checkLengths('DdpmSampler.predictX0', sample, { modelOutput, out });
    vpPredictX0(this.prediction, this.coefficients[index].alphaProd, this.clip, sample, modelOutput, out);
  }
}
