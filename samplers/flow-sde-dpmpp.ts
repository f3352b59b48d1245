/**
 * SDE-DPM-Solver++ (Lu et al., arXiv 2211.01095) for rectified-flow models, the stochastic sampler
 * EvoSearch runs on FLUX and Wan: the EvoSearch authors' FlowDPMSolverMultistepScheduler with
 * algorithm_type 'sde-dpmsolver++', solver_order 2, final_sigmas_type 'zero' (EvoSearch-codes
 * FLUX/fm_solvers.py, itself diffusers' DPMSolverMultistepScheduler adapted to flow matching).
 *
 * On the flow path alpha = 1 - sigma, lambda = log(alpha) - log(sigma), and the model's velocity becomes
 * the data prediction x0 = x - sigma * v (convert_model_output). From s0 = sigma_i to t = sigma_{i+1},
 * with h = lambda_t - lambda_s0:
 *
 *   first order:  x_t = (sigma_t / sigma_s0) e^-h x + alpha_t (1 - e^-2h) x0 + sigma_t sqrt(1 - e^-2h) z
 *   second order: the same plus alpha_t (1 - e^-2h) * 0.5 * D1            (midpoint)
 *                 or alpha_t ((1 - e^-2h) / (-2h) + 1) * D1                 (heun)
 *                 with D1 = (x0 - x0_prev) / r0, r0 = (lambda_s0 - lambda_s1) / h
 *
 * When the first-order update is used (diffusers' step()): on a trajectory's first step (no previous x0:
 * lower_order_nums == 0), on the last step (final_sigmas_type 'zero' forces lower_order_final there, and
 * so do euler_at_final or lower_order_final with N < 15), and always with solver_order 1. At sigma_0 = 1
 * alpha is 0, so lambda_s0 = -inf and h = +inf: the first step lands on alpha_1 x0 + sigma_1 z, and on the
 * second step r0 = +inf makes D1 vanish. On the last step sigma_t = 0 gives h = +inf again, x_N = x0 and a
 * noise std of 0, so the last step is deterministic here (the reference solver still draws a tensor there
 * and multiplies it by 0).
 *
 * noiseStd(i) = sigma_{i+1} sqrt(1 - e^-2h): the std of the noise the step injects, which EvoSearch uses
 * as the mutation strength at that step.
 *
 * The previous step's x0 is kept in the caller's SolverMemory, never here, so one sampler serves a whole
 * population. The array stored in memory.previousX0 is freshly allocated every step and never written
 * afterwards, so copies of a memory object (a cloned candidate) may share it safely.
 */
import type { Sampler, SolverMemory, StepTime } from './sampler.js';
import type { ResolvedFlowSdeDpmppConfig } from './sampler-config.js';
import { flowSdeSchedule } from './flow-sde-schedule.js';
import { SamplerConfigError } from './sampler-config-error.js';
import { flowPredictX0, flowTime } from './flow-time.js';
import { SamplerStepError, checkLengths, checkStepIndex, requireNoise } from './sampler-step-error.js';

interface DpmStepCoefficients {
  /** Coefficient of the sample x. */
  readonly sampleCoeff: number;
  /** Coefficient of this step's x0 (D0). */
  readonly x0Coeff: number;
  /** Coefficient of (x0 - x0_prev) in the second-order update (includes 1 / r0); unused at first order. */
  readonly diffCoeff: number;
  /** Noise std sigma_t sqrt(1 - e^-2h). */
  readonly std: number;
  /** Whether diffusers' step() forces the first-order update here regardless of memory. */
  readonly forceFirstOrder: boolean;
}

/** lambda = log(alpha) - log(sigma) with alpha = 1 - sigma; -inf at sigma 1, +inf at sigma 0. */
function flowLambda(sigma: number): number {
  return Math.log(1 - sigma) - Math.log(sigma);
}

export class FlowSdeDpmppSampler implements Sampler {
  readonly steps: number;
  readonly prediction = 'flow' as const;
  readonly timesteps: readonly number[];
  /** N + 1 float32 sigmas, the last 0. */
  readonly sigmas: Float32Array;
  readonly solverOrder: 1 | 2;
  private readonly coefficients: readonly DpmStepCoefficients[];
  private readonly times: readonly StepTime[];

  constructor(config: ResolvedFlowSdeDpmppConfig) {
    const { sigmas, timesteps } = flowSdeSchedule(config.num_train_timesteps, config.steps, config.shift);
    const N = config.steps;
    this.steps = N;
    this.timesteps = Object.freeze(timesteps.slice());
    this.sigmas = sigmas;
    this.solverOrder = config.solver_order;
    const coefficients: DpmStepCoefficients[] = [];
    for (let i = 0; i < N; i++) {
      const sigmaS0 = sigmas[i];
      const sigmaT = sigmas[i + 1];
      const alphaT = 1 - sigmaT;
      const lambdaS0 = flowLambda(sigmaS0);
      const h = flowLambda(sigmaT) - lambdaS0;
      const expM2h = Math.exp(-2 * h);
      const x0Coeff = alphaT * (1 - expM2h);
      let diffCoeff = 0;
      if (i > 0) {
        const invR0 = 1 / ((lambdaS0 - flowLambda(sigmas[i - 1])) / h);
        diffCoeff = config.solver_type === 'midpoint' ? 0.5 * x0Coeff * invR0 : alphaT * ((1 - expM2h) / (-2 * h) + 1) * invR0;
      }
      const last = i === N - 1;
      if (!(sigmaT < sigmaS0)) {
        // Equal float32 sigmas (an extreme shift) would make h = 0 or inf - inf and the update NaN.
        throw new SamplerConfigError('shift', config.shift, `a value whose sigmas strictly decrease in float32 (sigma ${i} = sigma ${i + 1} = ${sigmaS0} with ${N} steps)`);
      }
      coefficients.push({
        sampleCoeff: (sigmaT / sigmaS0) * Math.exp(-h),
        x0Coeff,
        diffCoeff,
        std: sigmaT * Math.sqrt(1 - expM2h),
        forceFirstOrder:
          config.solver_order === 1 ||
          (last && (config.euler_at_final || (config.lower_order_final && N < 15) || config.final_sigmas_type === 'zero')),
      });
    }
    this.coefficients = coefficients;
    const times: StepTime[] = [];
    for (let i = 0; i < N; i++) times.push(flowTime(timesteps[i], sigmas[i]));
    times.push(flowTime(0, 0));
    this.times = times;
  }

  time(index: number): StepTime {
    checkStepIndex('FlowSdeDpmppSampler.time', index, this.steps + 1);
    return this.times[index];
  }

  isStochastic(index: number): boolean {
    return this.noiseStd(index) > 0;
  }

  noiseStd(index: number): number {
    checkStepIndex('FlowSdeDpmppSampler.noiseStd', index, this.steps);
    return this.coefficients[index].std;
  }

  /** Whether step `index` uses the second-order update given this memory (diffusers' order choice). */
  usesSecondOrder(index: number, memory: SolverMemory): boolean {
    checkStepIndex('FlowSdeDpmppSampler.usesSecondOrder', index, this.steps);
    return !this.coefficients[index].forceFirstOrder && memory.previousX0 !== null;
  }

  step(index: number, sample: Float32Array, modelOutput: Float32Array, noise: Float32Array | null, out: Float32Array, memory: SolverMemory): void {
    checkStepIndex('FlowSdeDpmppSampler.step', index, this.steps);
    const c = this.coefficients[index];
    const z = c.std > 0 ? requireNoise('FlowSdeDpmppSampler.step', index, noise) : null;
    const previous = this.usesSecondOrder(index, memory) ? memory.previousX0 : null;
    checkLengths('FlowSdeDpmppSampler.step', sample, { modelOutput, noise: z, out });
    if (previous !== null && previous.length !== sample.length) {
      throw new SamplerStepError(`FlowSdeDpmppSampler.step: memory.previousX0 has ${previous.length} elements but sample has ${sample.length}`);
    }
    const n = sample.length;
    // convert_model_output, stored as float32 like the reference's model_outputs list.
    const x0 = new Float32Array(n);
    flowPredictX0(this.sigmas[index], sample, modelOutput, x0);
    const { sampleCoeff, x0Coeff, std } = c;
    if (previous !== null) {
      const diffCoeff = c.diffCoeff;
      for (let k = 0; k < n; k++) {
        const m0 = x0[k];
        let v = sampleCoeff * sample[k] + x0Coeff * m0 + diffCoeff * (m0 - previous[k]);
        if (z !== null) v += std * z[k];
        out[k] = v;
      }
    } else {
      for (let k = 0; k < n; k++) {
        let v = sampleCoeff * sample[k] + x0Coeff * x0[k];
        if (z !== null) v += std * z[k];
        out[k] = v;
      }
    }
    memory.previousX0 = this.solverOrder > 1 ? x0 : null;
  }

  predictX0(index: number, sample: Float32Array, modelOutput: Float32Array, out: Float32Array): void {
    checkStepIndex('FlowSdeDpmppSampler.predictX0', index, this.steps);
    checkLengths('FlowSdeDpmppSampler.predictX0', sample, { modelOutput, out });
    flowPredictX0(this.sigmas[index], sample, modelOutput, out);
  }
}
