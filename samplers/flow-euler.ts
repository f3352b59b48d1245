/**
 * Euler sampling of a rectified-flow model, diffusers' FlowMatchEulerDiscreteScheduler.step:
 *
 *   x_next = x + (sigma_next - sigma) * v                       (deterministic, noiseStd 0)
 *   x_next = (1 - sigma_next) * (x - sigma v) + sigma_next * z  (stochastic_sampling)
 *
 * Sigmas and timesteps come from flow-match-schedule.ts (static or dynamic shift). time(N) is the clean
 * sample: sigma 0, timestep 0.
 */
import type { Sampler, SolverMemory, StepTime } from './sampler.js';
import type { ResolvedFlowEulerConfig } from './sampler-config.js';
import { flowMatchSchedule } from './flow-match-schedule.js';
import { flowPredictX0, flowTime } from './flow-time.js';
import { checkLengths, checkStepIndex, requireNoise } from './sampler-step-error.js';

export class FlowEulerSampler implements Sampler {
  readonly steps: number;
  readonly prediction = 'flow' as const;
  readonly timesteps: readonly number[];
  /** N + 1 float32 sigmas, the last 0. */
  readonly sigmas: Float32Array;
  private readonly stochastic: boolean;
  private readonly times: readonly StepTime[];

  constructor(config: ResolvedFlowEulerConfig) {
    const schedule = flowMatchSchedule({
      numTrainTimesteps: config.num_train_timesteps,
      steps: config.steps,
      shift: config.shift,
      mu: config.mu,
      timeShiftType: config.time_shift_type,
      sigmaSchedule: config.sigma_schedule,
    });
    this.steps = config.steps;
    this.timesteps = Object.freeze(schedule.timesteps.slice());
    this.sigmas = schedule.sigmas;
    this.stochastic = config.stochastic_sampling;
    const times: StepTime[] = [];
    for (let i = 0; i < this.steps; i++) times.push(flowTime(this.timesteps[i], this.sigmas[i]));
    times.push(flowTime(0, 0));
    this.times = times;
  }

  time(index: number): StepTime {
    checkStepIndex('FlowEulerSampler.time', index, this.steps + 1);
    return this.times[index];
  }

  isStochastic(index: number): boolean {
    return this.noiseStd(index) > 0;
  }

  noiseStd(index: number): number {
    checkStepIndex('FlowEulerSampler.noiseStd', index, this.steps);
    return this.stochastic ? this.sigmas[index + 1] : 0;
  }

  step(index: number, sample: Float32Array, modelOutput: Float32Array, noise: Float32Array | null, out: Float32Array, _memory: SolverMemory): void {
    checkStepIndex('FlowEulerSampler.step', index, this.steps);
    const sigma = this.sigmas[index];
    const sigmaNext = this.sigmas[index + 1];
    const n = sample.length;
    if (this.stochastic && sigmaNext > 0) {
      const z = requireNoise('FlowEulerSampler.step', index, noise);
      checkLengths('FlowEulerSampler.step', sample, { modelOutput, noise: z, out });
      for (let k = 0; k < n; k++) out[k] = (1 - sigmaNext) * (sample[k] - sigma * modelOutput[k]) + sigmaNext * z[k];
      return;
    }
    checkLengths('FlowEulerSampler.step', sample, { modelOutput, out });
    if (this.stochastic) {
      // sigma_next = 0: the stochastic formula reduces to x0.
      flowPredictX0(sigma, sample, modelOutput, out);
      return;
    }
    // diffusers computes dt = sigma_next - sigma on float32 tensors.
    const dt = Math.fround(sigmaNext - sigma);
    for (let k = 0; k < n; k++) out[k] = sample[k] + dt * modelOutput[k];
  }

  predictX0(index: number, sample: Float32Array, modelOutput: Float32Array, out: Float32Array): void {
    checkStepIndex('FlowEulerSampler.predictX0', index, this.steps);
    checkLengths('FlowEulerSampler.predictX0', sample, { modelOutput, out });
    flowPredictX0(this.sigmas[index], sample, modelOutput, out);
  }
}
