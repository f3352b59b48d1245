/**
 * Maps a bundle's diffusers `scheduler/scheduler_config.json` to this project's SamplerConfig. The
 * schedule (betas or sigmas, prediction type, spacing, offset) belongs to the model and is copied key by
 * key, as diffusers' `from_config` would; the sampler kind and the search's overrides (number of steps,
 * DDIM eta: EvoSearch runs DDIM with eta = 1) belong to the run. Keys a scheduler class does not have
 * are ignored, as from_config ignores them; values this project cannot honour fail with the file named.
 */
import {
  resolveSamplerConfig,
  SamplerConfigError,
  type SamplerConfig,
  type SamplerKind,
} from '../../samplers/index.js';
import { readBundleManifest } from './bundle-manifest.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

/** A scheduler config this runtime cannot turn into a sampler: names the file and the key. */
export class SchedulerMappingError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'SchedulerMappingError';
  constructor(readonly file: string, readonly field: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${field}: ${detail}`, options);
  }
}

/** Variance-preserving (DDPM-family) scheduler classes: their configs share the beta schedule fields. */
const VP_CLASSES = [
  'DDIMScheduler', 'DDPMScheduler', 'PNDMScheduler', 'EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler',
  'LMSDiscreteScheduler', 'DPMSolverMultistepScheduler', 'DPMSolverSinglestepScheduler', 'UniPCMultistepScheduler',
  'DEISMultistepScheduler', 'HeunDiscreteScheduler', 'KDPM2DiscreteScheduler', 'KDPM2AncestralDiscreteScheduler',
] as const;
/** Flow-matching scheduler classes (sigma schedules with a shift). */
const FLOW_CLASSES = ['FlowMatchEulerDiscreteScheduler', 'FlowDPMSolverMultistepScheduler', 'FlowSdeDpmppScheduler'] as const;

const VP_SHARED_KEYS = ['num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'prediction_type', 'timestep_spacing', 'steps_offset', 'clip_sample', 'clip_sample_range', 'thresholding', 'rescale_betas_zero_snr'] as const;
const FLOW_EULER_KEYS = ['num_train_timesteps', 'shift', 'use_dynamic_shifting', 'base_shift', 'max_shift', 'base_image_seq_len', 'max_image_seq_len', 'time_shift_type', 'stochastic_sampling'] as const;
const FLOW_SDE_KEYS = ['num_train_timesteps', 'shift', 'solver_order', 'solver_type', 'lower_order_final', 'euler_at_final', 'final_sigmas_type', 'prediction_type', 'algorithm_type'] as const;

export interface SchedulerMappingOptions {
  /** Number of inference steps. */
  readonly steps: number;
  /**
   * Sampler to run the model's schedule with. Default: the scheduler's own kind (DDIM for DDIM and the
   * other VP multistep classes, DDPM for DDPMScheduler, flow-euler for FlowMatchEuler, flow-sde-dpmpp for
   * the flow DPM-Solver classes). EvoSearch on a flow model asks for 'flow-sde-dpmpp' (stochastic).
   */
  readonly kind?: SamplerKind;
  /** DDIM eta (the search's override: EvoSearch needs 1). Default 0, DDIMScheduler.step's default. */
  readonly eta?: number;
  /** Flow shift override (flow-sde-dpmpp: 1 for FLUX, 5 for Wan); default: the config's `shift`. */
  readonly shift?: number;
  /** Image token count, for dynamic shifting (`use_dynamic_shifting`), which needs it to compute mu. */
  readonly imageSeqLen?: number;
}

type Json = Readonly<Record<string, unknown>>;

function copy(raw: Json, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // null is diffusers' "unset": leave the key out so the default applies.
  for (const key of keys) if (raw[key] !== undefined && raw[key] !== null) out[key] = raw[key];
  return out;
}

/** The SamplerConfig for `raw` (the parsed scheduler_config.json at `file`), validated. */
export function samplerConfigFromScheduler(raw: Json, file: string, options: SchedulerMappingOptions): SamplerConfig {
  const className = raw._class_name;
  if (typeof className !== 'string') throw new SchedulerMappingError(file, '_class_name', 'missing: a diffusers scheduler config names its class');
  const isVp = (VP_CLASSES as readonly string[]).includes(className);
  const isFlow = (FLOW_CLASSES as readonly string[]).includes(className);
  if (!isVp && !isFlow) {
    throw new SchedulerMappingError(file, '_class_name', `'${className}' is not a scheduler this runtime maps (VP: ${VP_CLASSES.join(', ')}; flow: ${FLOW_CLASSES.join(', ')})`);
  }
  const kind: SamplerKind = options.kind ?? (className === 'DDPMScheduler' ? 'ddpm' : isVp ? 'ddim' : className === 'FlowMatchEulerDiscreteScheduler' ? 'flow-euler' : 'flow-sde-dpmpp');
  const vpKind = kind === 'ddim' || kind === 'ddpm';
  if (vpKind !== isVp) {
    throw new SchedulerMappingError(file, '_class_name', `'${className}' is a ${isVp ? 'variance-preserving (DDPM-family)' : 'flow-matching'} schedule; sampler '${kind}' cannot run it (use ${isVp ? "'ddim' or 'ddpm'" : "'flow-euler' or 'flow-sde-dpmpp'"})`);
  }
  if (raw.trained_betas !== undefined && raw.trained_betas !== null) {
    throw new SchedulerMappingError(file, 'trained_betas', 'explicit betas are not supported; give beta_schedule, beta_start and beta_end');
  }
  if (options.eta !== undefined && kind !== 'ddim') throw new SchedulerMappingError(file, 'eta', `is a DDIM option; sampler '${kind}' has none`);

  let config: Record<string, unknown>;
  switch (kind) {
    case 'ddim':
      config = { kind, steps: options.steps, ...copy(raw, VP_SHARED_KEYS), ...copy(raw, ['set_alpha_to_one']), eta: options.eta ?? 0 };
      break;
    case 'ddpm':
      config = { kind, steps: options.steps, ...copy(raw, VP_SHARED_KEYS), ...copy(raw, ['variance_type']) };
      break;
    case 'flow-euler': {
      config = { kind, steps: options.steps, ...copy(raw, FLOW_EULER_KEYS) };
      if (options.shift !== undefined) config.shift = options.shift;
      if (config.use_dynamic_shifting === true) {
        if (options.imageSeqLen === undefined) throw new SchedulerMappingError(file, 'use_dynamic_shifting', 'is true: give the image token count (imageSeqLen) so mu can be computed');
        config.image_seq_len = options.imageSeqLen;
      }
      break;
    }
    case 'flow-sde-dpmpp': {
      const fromFlowEuler = className === 'FlowMatchEulerDiscreteScheduler';
      config = { kind, steps: options.steps, ...copy(raw, fromFlowEuler ? ['num_train_timesteps', 'shift'] : FLOW_SDE_KEYS) };
      if (options.shift !== undefined) config.shift = options.shift;
      else if (raw.use_dynamic_shifting === true) {
        // The SDE solver takes one static shift; a dynamic schedule has none to copy.
        throw new SchedulerMappingError(file, 'use_dynamic_shifting', "is true and flow-sde-dpmpp needs a static shift: give `shift` (1 for FLUX in EvoSearch, 5 for Wan)");
      }
      break;
    }
  }
  try {
    resolveSamplerConfig(config as unknown as SamplerConfig);
  } catch (error) {
    if (error instanceof SamplerConfigError) throw new SchedulerMappingError(file, error.field, error.message, { cause: error });
    throw error;
  }
  return config as unknown as SamplerConfig;
}

/**
 * The sampler config for a bundle folder without opening any session: what a coordinator needs before
 * it starts workers (the run's sampler must match the network's schedule and prediction type).
 */
export async function bundleSamplerConfig(folder: string, options: SchedulerMappingOptions): Promise<SamplerConfig> {
  const manifest = await readBundleManifest(folder);
  return samplerConfigFromScheduler(manifest.scheduler.config, manifest.scheduler.file, options);
}
