/**
 * What a run's config says about its sampler: a discriminated union on `kind`, with the scheduler fields
 * spelt as diffusers spells them (so a model's scheduler_config.json maps across field by field), and
 * `resolveSamplerConfig`, which fills diffusers' constructor defaults and validates every field.
 *
 * Defaults are the diffusers class defaults (not a particular model's): an absent field behaves as it
 * does when diffusers loads a scheduler_config.json that omits it. Note that DDIM and DDPM default to
 * clip_sample true and the linear 1e-4..0.02 schedule, as in diffusers; Stable Diffusion configs override
 * both. The zod schema of the run config should mirror these types and the *_DEFAULTS objects.
 */
import { BETA_SCHEDULES, type BetaSchedule } from './beta-schedule.js';
import { TIMESTEP_SPACINGS, type TimestepSpacing } from './timesteps.js';
import { TIME_SHIFT_TYPES, type TimeShiftType, calculateShift } from './flow-shift.js';
import { FLOW_SIGMA_SCHEDULES, type FlowSigmaSchedule } from './flow-match-schedule.js';
import { SamplerConfigError } from './sampler-config-error.js';
import {
  type RawConfig,
  checkNumber,
  readBool,
  readEnum,
  readNumber,
  readOptionalNumber,
  rejectUnknownKeys,
} from './config-fields.js';

export const SAMPLER_KINDS = ['ddim', 'ddpm', 'flow-euler', 'flow-sde-dpmpp'] as const;
export type SamplerKind = (typeof SAMPLER_KINDS)[number];

export const VP_PREDICTION_TYPES = ['epsilon', 'v_prediction'] as const;
export type VpPredictionType = (typeof VP_PREDICTION_TYPES)[number];

export const SDE_SOLVER_ORDERS = [1, 2] as const;
export const SDE_SOLVER_TYPES = ['midpoint', 'heun'] as const;

/** Fields DDIM and DDPM share (DDIMScheduler / DDPMScheduler constructor arguments). */
export interface VpSamplerFields {
  /** Number of inference steps N (1..num_train_timesteps). */
  readonly steps: number;
  readonly num_train_timesteps?: number;
  readonly beta_start?: number;
  readonly beta_end?: number;
  readonly beta_schedule?: BetaSchedule;
  readonly prediction_type?: VpPredictionType;
  readonly timestep_spacing?: TimestepSpacing;
  readonly steps_offset?: number;
  /** Clamp the x0 prediction to [-clip_sample_range, clip_sample_range]. */
  readonly clip_sample?: boolean;
  readonly clip_sample_range?: number;
  /** Dynamic thresholding is not implemented: only false (or absent) is accepted. */
  readonly thresholding?: false;
  /** Zero-terminal-SNR rescaling is not implemented: only false (or absent) is accepted. */
  readonly rescale_betas_zero_snr?: false;
}

export interface DdimSamplerConfig extends VpSamplerFields {
  readonly kind: 'ddim';
  readonly set_alpha_to_one?: boolean;
  /** DDIM's eta in [0, 1] (a step() argument in diffusers): 0 is deterministic, 1 the DDPM posterior noise. */
  readonly eta?: number;
  readonly use_clipped_model_output?: boolean;
}

export interface DdpmSamplerConfig extends VpSamplerFields {
  readonly kind: 'ddpm';
  /** Only diffusers' default 'fixed_small' is implemented. */
  readonly variance_type?: 'fixed_small';
}

export interface FlowEulerSamplerConfig {
  readonly kind: 'flow-euler';
  readonly steps: number;
  readonly num_train_timesteps?: number;
  /** Static shift (ignored by diffusers when use_dynamic_shifting). */
  readonly shift?: number;
  readonly use_dynamic_shifting?: boolean;
  /** The dynamic shift's mu; give it or image_seq_len when use_dynamic_shifting. */
  readonly mu?: number;
  /** Image token count, turned into mu by the pipelines' calculate_shift. */
  readonly image_seq_len?: number;
  readonly base_shift?: number;
  readonly max_shift?: number;
  readonly base_image_seq_len?: number;
  readonly max_image_seq_len?: number;
  readonly time_shift_type?: TimeShiftType;
  /** 'default': set_timesteps(N) (SD3 and most pipelines); 'flux': FluxPipeline's sigmas linspace(1, 1/N, N). */
  readonly sigma_schedule?: FlowSigmaSchedule;
  /** diffusers' stochastic_sampling: x_next = (1 - s_next) x0 + s_next * noise. */
  readonly stochastic_sampling?: boolean;
}

export interface FlowSdeDpmppSamplerConfig {
  readonly kind: 'flow-sde-dpmpp';
  readonly steps: number;
  readonly num_train_timesteps?: number;
  /** Sigma shift: 1 for FLUX, 5 for Wan 2.1 in EvoSearch. */
  readonly shift?: number;
  readonly solver_order?: (typeof SDE_SOLVER_ORDERS)[number];
  readonly solver_type?: (typeof SDE_SOLVER_TYPES)[number];
  readonly lower_order_final?: boolean;
  readonly euler_at_final?: boolean;
  readonly final_sigmas_type?: 'zero';
  readonly prediction_type?: 'flow_prediction';
  readonly algorithm_type?: 'sde-dpmsolver++';
}

export type SamplerConfig = DdimSamplerConfig | DdpmSamplerConfig | FlowEulerSamplerConfig | FlowSdeDpmppSamplerConfig;

type Resolved<T> = { readonly [K in keyof T]-?: Exclude<T[K], undefined> };

export type ResolvedDdimConfig = Resolved<Omit<DdimSamplerConfig, 'thresholding' | 'rescale_betas_zero_snr'>>;
export type ResolvedDdpmConfig = Resolved<Omit<DdpmSamplerConfig, 'thresholding' | 'rescale_betas_zero_snr'>>;
/** Dynamic shifting is resolved to `mu` (null for the static shift). */
export type ResolvedFlowEulerConfig = Resolved<Omit<FlowEulerSamplerConfig, 'mu' | 'image_seq_len'>> & { readonly mu: number | null };
export type ResolvedFlowSdeDpmppConfig = Resolved<FlowSdeDpmppSamplerConfig>;
export type ResolvedSamplerConfig = ResolvedDdimConfig | ResolvedDdpmConfig | ResolvedFlowEulerConfig | ResolvedFlowSdeDpmppConfig;

const VP_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
  clip_sample: true,
  clip_sample_range: 1.0,
} as const;

/** DDIMScheduler's defaults (eta: DDIMScheduler.step's default). */
export const DDIM_DEFAULTS = { ...VP_DEFAULTS, set_alpha_to_one: true, eta: 0, use_clipped_model_output: false } as const;
/** DDPMScheduler's defaults. */
export const DDPM_DEFAULTS = { ...VP_DEFAULTS, variance_type: 'fixed_small' } as const;
/** FlowMatchEulerDiscreteScheduler's defaults (sigma_schedule: how the pipeline calls set_timesteps). */
export const FLOW_EULER_DEFAULTS = {
  num_train_timesteps: 1000,
  shift: 1.0,
  use_dynamic_shifting: false,
  base_shift: 0.5,
  max_shift: 1.15,
  base_image_seq_len: 256,
  max_image_seq_len: 4096,
  time_shift_type: 'exponential',
  sigma_schedule: 'default',
  stochastic_sampling: false,
} as const;
/** FlowDPMSolverMultistepScheduler's defaults, with algorithm_type fixed to the SDE variant. */
export const FLOW_SDE_DPMPP_DEFAULTS = {
  num_train_timesteps: 1000,
  shift: 1.0,
  solver_order: 2,
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  final_sigmas_type: 'zero',
  prediction_type: 'flow_prediction',
  algorithm_type: 'sde-dpmsolver++',
} as const;

const VP_KEYS = [
  'kind', 'steps', 'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'prediction_type',
  'timestep_spacing', 'steps_offset', 'clip_sample', 'clip_sample_range', 'thresholding', 'rescale_betas_zero_snr',
] as const;
const DDIM_KEYS = [...VP_KEYS, 'set_alpha_to_one', 'eta', 'use_clipped_model_output'];
const DDPM_KEYS = [...VP_KEYS, 'variance_type'];
const FLOW_EULER_KEYS = ['kind', 'steps', ...Object.keys(FLOW_EULER_DEFAULTS), 'mu', 'image_seq_len'];
const FLOW_SDE_KEYS = ['kind', 'steps', ...Object.keys(FLOW_SDE_DPMPP_DEFAULTS)];

/** Validates `config` and fills defaults. Throws SamplerConfigError naming the first bad field. */
export function resolveSamplerConfig(config: SamplerConfig): ResolvedSamplerConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new SamplerConfigError('sampler', config, 'an object with a `kind` field');
  }
  const raw = config as unknown as RawConfig;
  switch (raw.kind) {
    case 'ddim':
      return resolveDdim(raw);
    case 'ddpm':
      return resolveDdpm(raw);
    case 'flow-euler':
      return resolveFlowEuler(raw);
    case 'flow-sde-dpmpp':
      return resolveFlowSde(raw);
    default:
      throw new SamplerConfigError('kind', raw.kind, `one of ${SAMPLER_KINDS.map((k) => `'${k}'`).join(', ')}`);
  }
}

function readSteps(raw: RawConfig, max: number): number {
  return checkNumber('steps', raw.steps, { integer: true, min: 1, max });
}

function readTrainTimesteps(raw: RawConfig): number {
  return readNumber(raw, 'num_train_timesteps', 1000, { integer: true, min: 1 });
}

/** Accepts only `false`/absent for a diffusers option this module does not implement. */
function readUnsupportedFlag(raw: RawConfig, key: string): void {
  if (readBool(raw, key, false)) throw new SamplerConfigError(key, true, 'false (not implemented)');
}

function resolveVp(raw: RawConfig) {
  const num_train_timesteps = readTrainTimesteps(raw);
  const steps = readSteps(raw, num_train_timesteps);
  const beta_schedule = readEnum(raw, 'beta_schedule', BETA_SCHEDULES, VP_DEFAULTS.beta_schedule);
  // betas must lie in [0, 1) for alphas_cumprod to stay positive.
  const beta_start = readNumber(raw, 'beta_start', VP_DEFAULTS.beta_start, { min: 0, max: 1, maxExclusive: true });
  const beta_end = readNumber(raw, 'beta_end', VP_DEFAULTS.beta_end, { min: 0, max: 1, maxExclusive: true });
  readUnsupportedFlag(raw, 'thresholding');
  readUnsupportedFlag(raw, 'rescale_betas_zero_snr');
  return {
    steps,
    num_train_timesteps,
    beta_start,
    beta_end,
    beta_schedule,
    prediction_type: readEnum(raw, 'prediction_type', VP_PREDICTION_TYPES, VP_DEFAULTS.prediction_type),
    timestep_spacing: readEnum(raw, 'timestep_spacing', TIMESTEP_SPACINGS, VP_DEFAULTS.timestep_spacing),
    steps_offset: readNumber(raw, 'steps_offset', VP_DEFAULTS.steps_offset, { integer: true, min: 0 }),
    clip_sample: readBool(raw, 'clip_sample', VP_DEFAULTS.clip_sample),
    clip_sample_range: readNumber(raw, 'clip_sample_range', VP_DEFAULTS.clip_sample_range, { min: 0, minExclusive: true }),
  };
}

function resolveDdim(raw: RawConfig): ResolvedDdimConfig {
  rejectUnknownKeys(raw, 'ddim', DDIM_KEYS);
  return {
    kind: 'ddim',
    ...resolveVp(raw),
    set_alpha_to_one: readBool(raw, 'set_alpha_to_one', DDIM_DEFAULTS.set_alpha_to_one),
    eta: readNumber(raw, 'eta', DDIM_DEFAULTS.eta, { min: 0, max: 1 }),
    use_clipped_model_output: readBool(raw, 'use_clipped_model_output', DDIM_DEFAULTS.use_clipped_model_output),
  };
}

function resolveDdpm(raw: RawConfig): ResolvedDdpmConfig {
  rejectUnknownKeys(raw, 'ddpm', DDPM_KEYS);
  return {
    kind: 'ddpm',
    ...resolveVp(raw),
    variance_type: readEnum(raw, 'variance_type', ['fixed_small'] as const, DDPM_DEFAULTS.variance_type),
  };
}

function resolveFlowEuler(raw: RawConfig): ResolvedFlowEulerConfig {
  rejectUnknownKeys(raw, 'flow-euler', FLOW_EULER_KEYS);
  const d = FLOW_EULER_DEFAULTS;
  const num_train_timesteps = readTrainTimesteps(raw);
  const steps = readSteps(raw, Number.MAX_SAFE_INTEGER);
  const positive = { min: 0, minExclusive: true } as const;
  const shift = readNumber(raw, 'shift', d.shift, positive);
  const use_dynamic_shifting = readBool(raw, 'use_dynamic_shifting', d.use_dynamic_shifting);
  const base_shift = readNumber(raw, 'base_shift', d.base_shift, {});
  const max_shift = readNumber(raw, 'max_shift', d.max_shift, {});
  const base_image_seq_len = readNumber(raw, 'base_image_seq_len', d.base_image_seq_len, { integer: true, min: 1 });
  const max_image_seq_len = readNumber(raw, 'max_image_seq_len', d.max_image_seq_len, { integer: true, min: 1 });
  const time_shift_type = readEnum(raw, 'time_shift_type', TIME_SHIFT_TYPES, d.time_shift_type);
  const givenMu = readOptionalNumber(raw, 'mu', {});
  const imageSeqLen = readOptionalNumber(raw, 'image_seq_len', { integer: true, min: 1 });
  let mu: number | null = null;
  if (use_dynamic_shifting) {
    if (givenMu !== null && imageSeqLen !== null) {
      throw new SamplerConfigError('mu', givenMu, 'absent when image_seq_len is given (give one of mu, image_seq_len)');
    }
    if (givenMu === null && imageSeqLen === null) {
      throw new SamplerConfigError('mu', undefined, 'a finite number (or give image_seq_len) when use_dynamic_shifting is true');
    }
    if (givenMu !== null) {
      mu = givenMu;
    } else {
      if (base_image_seq_len === max_image_seq_len) {
        throw new SamplerConfigError('max_image_seq_len', max_image_seq_len, 'different from base_image_seq_len to compute mu');
      }
      mu = calculateShift(imageSeqLen as number, base_image_seq_len, max_image_seq_len, base_shift, max_shift);
    }
    if (time_shift_type === 'linear' && !(mu > 0)) {
      throw new SamplerConfigError('mu', mu, "> 0 with time_shift_type 'linear'");
    }
  } else {
    if (givenMu !== null) throw new SamplerConfigError('mu', givenMu, 'absent unless use_dynamic_shifting is true');
    if (imageSeqLen !== null) throw new SamplerConfigError('image_seq_len', imageSeqLen, 'absent unless use_dynamic_shifting is true');
  }
  return {
    kind: 'flow-euler',
    steps,
    num_train_timesteps,
    shift,
    use_dynamic_shifting,
    mu,
    base_shift,
    max_shift,
    base_image_seq_len,
    max_image_seq_len,
    time_shift_type,
    sigma_schedule: readEnum(raw, 'sigma_schedule', FLOW_SIGMA_SCHEDULES, d.sigma_schedule),
    stochastic_sampling: readBool(raw, 'stochastic_sampling', d.stochastic_sampling),
  };
}

function resolveFlowSde(raw: RawConfig): ResolvedFlowSdeDpmppConfig {
  rejectUnknownKeys(raw, 'flow-sde-dpmpp', FLOW_SDE_KEYS);
  const d = FLOW_SDE_DPMPP_DEFAULTS;
  const num_train_timesteps = readTrainTimesteps(raw);
  return {
    kind: 'flow-sde-dpmpp',
    steps: readSteps(raw, Number.MAX_SAFE_INTEGER),
    num_train_timesteps,
    shift: readNumber(raw, 'shift', d.shift, { min: 0, minExclusive: true }),
    // Order 3 has no SDE update in the reference solver (it falls through to the ODE formula).
    solver_order: readEnum(raw, 'solver_order', SDE_SOLVER_ORDERS, d.solver_order),
    solver_type: readEnum(raw, 'solver_type', SDE_SOLVER_TYPES, d.solver_type),
    lower_order_final: readBool(raw, 'lower_order_final', d.lower_order_final),
    euler_at_final: readBool(raw, 'euler_at_final', d.euler_at_final),
    // 'sigma_min' reads alphas_cumprod, which the reference flow solver never defines.
    final_sigmas_type: readEnum(raw, 'final_sigmas_type', ['zero'] as const, d.final_sigmas_type),
    prediction_type: readEnum(raw, 'prediction_type', ['flow_prediction'] as const, d.prediction_type),
    algorithm_type: readEnum(raw, 'algorithm_type', ['sde-dpmsolver++'] as const, d.algorithm_type),
  };
}
