import { z } from 'zod';
import { PRESET_NAMES } from './presets.js';
import { METHOD_NAMES } from '../search/machine.js';
import { hasCredentials } from '../cluster/nats-url.js';

/**
 * The run configuration as users write it (a YAML/JSON file, CLI flags on top). Everything is
 * optional: what is missing comes from the preset and the budget planner (see resolve-run-config.ts).
 * Unknown keys are errors, so a typo never silently falls back to a default.
 */

const positiveInt = z.number().int().positive();
const stepIndex = z.number().int().nonnegative();

export const EXECUTION_PROVIDERS = ['cpu', 'webgpu', 'cuda', 'tensorrt'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const samplerOverridesSchema = z.strictObject({
  kind: z.enum(['ddim', 'ddpm', 'flow-euler', 'flow-sde-dpmpp']).optional(),
  steps: positiveInt.max(1000).optional(),
  eta: z.number().min(0).max(1).optional(),
  shift: z.number().positive().optional(),
  mu: z.number().optional(),
  use_dynamic_shifting: z.boolean().optional(),
  num_train_timesteps: positiveInt.optional(),
  beta_start: z.number().positive().optional(),
  beta_end: z.number().positive().optional(),
  beta_schedule: z.enum(['linear', 'scaled_linear']).optional(),
  prediction_type: z.enum(['epsilon', 'v_prediction']).optional(),
  timestep_spacing: z.enum(['leading', 'trailing', 'linspace']).optional(),
  steps_offset: stepIndex.optional(),
  set_alpha_to_one: z.boolean().optional(),
  clip_sample: z.boolean().optional(),
});

export const evoSearchOverridesSchema = z.strictObject({
  evolutionSchedule: z.array(stepIndex).optional(),
  populationSchedule: z.array(positiveInt).optional(),
  elites: stepIndex.optional(),
  mutationRate: z.number().gt(0).lt(1).optional(),
  tournamentFraction: z.number().gt(0).max(1).optional(),
  tournamentSize: positiveInt.optional(),
  archive: z.boolean().optional(),
  /** 'tournament' (the paper's) or 'sharing': tournaments on shared fitness (docs/algorithms.md, "Diversity"). */
  selection: z.enum(['tournament', 'sharing']).optional(),
  /** σ_share: Euclidean distance between unit embeddings within which candidates share fitness. */
  sharingRadius: z.number().gt(0).max(2).optional(),
  /** α of the sharing kernel 1 − (d/σ)^α. */
  sharingAlpha: z.number().positive().optional(),
});

export const particleOverridesSchema = z.strictObject({
  particles: positiveInt.optional(),
  lambda: z.number().nonnegative().optional(),
  potential: z.enum(['max', 'add', 'diff', 'rt']).optional(),
  resampling: z
    .strictObject({ start: stepIndex.optional(), end: stepIndex.optional(), interval: positiveInt.optional() })
    .optional(),
  adaptive: z.boolean().optional(),
  fitness: z.enum(['x0-prediction', 'rollout']).optional(),
});

/**
 * onnxruntime's CUDA provider (worker/runtime/providers.ts says how each reaches it). A memory limit is
 * bytes or a size with a unit: 8GiB, 512MiB, 2GB.
 */
export const cudaOptionsSchema = z.strictObject({
  deviceId: z.number().int().nonnegative().max(1023).optional(),
  tf32: z.boolean().optional(),
  convAlgoSearch: z.enum(['exhaustive', 'heuristic', 'default']).optional(),
  memoryLimit: z.union([z.number().int().positive(), z.string().regex(/^\s*\d+(\.\d+)?(e\d+)?\s*([kmgt]i?b?|b)?\s*$/i, 'must be bytes or a size such as 8GiB or 512MiB')]).optional(),
});

export const runConfigSchema = z.strictObject({
  /** `analytic:gmm[?dimension=..&modes=..]` or (later) a model bundle folder. */
  model: z.string().min(1).optional(),
  method: z.enum(METHOD_NAMES).optional(),
  preset: z.enum(PRESET_NAMES).optional(),
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  /** The NFE budget every method is planned to (default: what the preset's EvoSearch schedule spends). */
  budgetNfe: positiveInt.optional(),
  sampler: samplerOverridesSchema.optional(),
  evosearch: evoSearchOverridesSchema.optional(),
  bestOfN: z.strictObject({ n: positiveInt.optional() }).optional(),
  particles: particleOverridesSchema.optional(),
  guidanceScale: z.number().nonnegative().optional(),
  /** The text prompt (text-conditioned bundles; the analytic model takes none). */
  prompt: z.string().min(1).max(1000).optional(),
  negativePrompt: z.string().max(1000).optional(),
  /** A rewards.json manifest to score with instead of the bundle's own. */
  rewards: z.string().min(1).optional(),
  /** Execution providers to try, in order (the first that opens is used and reported). */
  providers: z.array(z.enum(EXECUTION_PROVIDERS)).min(1).optional(),
  /** Options of the CUDA provider, used when 'cuda' is in the provider list. */
  cuda: cudaOptionsSchema.optional(),
  /** In-process worker threads of the embedded run. */
  workers: positiveInt.max(256).optional(),
  /** gRPC worker addresses (host:port, started with `evosearch worker`) to run on instead of local threads. */
  /** NATS URL of a cluster: run on the live workers registered there that serve the run's model build. */
  cluster: z
    .string()
    .regex(/^(nats|tls|ws|wss):\/\/\S+$/, 'must be a NATS URL such as nats://host:4222')
    // The plan is written to config.json, record.json and every checkpoint: a password in it would be too.
    .refine((url) => !hasCredentials(url), 'must not hold credentials (they would be written to config.json, record.json and the checkpoints): give them with --nats-user/--nats-password, --nats-token or --nats-creds, or their EVOSEARCH_NATS_* variables (docs/cluster-security.md)')
    .optional(),
  workersAt: z.array(z.string().regex(/^[^\s]+:\d+$/, 'must be host:port')).min(1).optional(),
  /** Latents per model call. */
  batchSize: positiveInt.max(65536).optional(),
  /**
   * Every model call runs exactly this many rows, cut or padded (worker/fixed-shape-model.ts): one
   * shape per run, for GPU providers, where each new batch size costs a slow first call and can change
   * the floats. Default: 32 (at most batchSize) where the denoiser runs on the CUDA provider, calls as
   * the work comes elsewhere; 'off': calls as the work comes everywhere.
   */
  callRows: z.union([positiveInt.max(65536), z.literal('off')]).optional(),
  /** Run folder. */
  out: z.string().min(1).optional(),
  logLevel: z.enum(LOG_LEVELS).optional(),
  progress: z.boolean().optional(),
  /**
   * Workers write their states to the run folder after every round, so a resume loads them instead of
   * recomputing them (default: on for local threads; for gRPC workers the folder is a path on their
   * machines, so only a shared folder makes it useful there).
   */
  snapshots: z.boolean().optional(),
});

export type RunConfigInput = z.infer<typeof runConfigSchema>;
