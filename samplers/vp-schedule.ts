/**
 * The VP schedule a DDIM or DDPM sampler runs on: alphas_cumprod over the training timesteps and the
 * inference timesteps, with the checks diffusers leaves to an IndexError later (a timestep past the end of
 * alphas_cumprod) or does not make at all (trailing spacing producing N + 1 timesteps).
 */
import { alphasCumprod, makeBetas, type BetaSchedule } from './beta-schedule.js';
import { vpTimesteps, type TimestepSpacing } from './timesteps.js';
import { SamplerConfigError } from './sampler-config-error.js';
import type { StepTime } from './sampler.js';

export interface VpScheduleFields {
  readonly steps: number;
  readonly num_train_timesteps: number;
  readonly beta_start: number;
  readonly beta_end: number;
  readonly beta_schedule: BetaSchedule;
  readonly timestep_spacing: TimestepSpacing;
  readonly steps_offset: number;
}

export interface VpSchedule {
  /** float32 alphas_cumprod, one per training timestep. */
  readonly alphasCumprod: Float32Array;
  /** Inference timesteps, highest first. */
  readonly timesteps: readonly number[];
}

export function buildVpSchedule(c: VpScheduleFields): VpSchedule {
  const acp = alphasCumprod(makeBetas(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end));
  const timesteps = vpTimesteps(c.timestep_spacing, c.num_train_timesteps, c.steps, c.steps_offset);
  if (timesteps.length !== c.steps) {
    throw new SamplerConfigError(
      'steps',
      c.steps,
      `a step count for which ${c.timestep_spacing} spacing yields that many timesteps (numpy gives ${timesteps.length} for num_train_timesteps ${c.num_train_timesteps})`,
    );
  }
  const highest = timesteps[0];
  if (highest >= c.num_train_timesteps) {
    throw new SamplerConfigError(
      'steps_offset',
      c.steps_offset,
      `small enough that the first timestep (${highest}) stays below num_train_timesteps (${c.num_train_timesteps})`,
    );
  }
  for (const t of timesteps) {
    if (!(acp[t] > 0)) {
      throw new SamplerConfigError('beta_end', c.beta_end, `a value whose schedule keeps alphas_cumprod positive (it is ${acp[t]} at timestep ${t})`);
    }
  }
  return { alphasCumprod: acp, timesteps };
}

/** StepTime of a VP schedule point with cumulative alpha `alphaProd`: x = sqrt(a) x0 + sqrt(1 - a) eps. */
export function vpTime(timestep: number, alphaProd: number): StepTime {
  return Object.freeze({ timestep, signalScale: Math.sqrt(alphaProd), noiseScale: Math.sqrt(1 - alphaProd) });
}
