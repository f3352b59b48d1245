/**
 * What a resolved run is: the plan every part of a run reads (config/resolve-run-config.ts makes it
 * from a run configuration, config/plan-run.ts with what a model bundle says about itself), and the
 * error a configuration that cannot run raises.
 */
import type { PlannedSpend } from '../search/planner.js';
import type { SearchMethodName } from '../search/machine.js';
import type { ParticleSearchConfig } from '../search/particles.js';
import type { EvoSearchConfig } from '../search/evosearch.js';
import type { SamplerConfig } from '../samplers/index.js';
import type { CudaProviderOptions } from '../proto/worker-setup.js';
import type { WorldOutput } from '../world/model-prompts.js';
import type { PresetName } from './presets.js';
import type { RunConfigInput, EXECUTION_PROVIDERS } from './run-config-schema.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

/** A configuration that cannot run: names the field (dotted path), what is wrong, and where it came from. */
export class ConfigError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'ConfigError';
  constructor(readonly field: string, readonly detail: string, readonly source = 'config', options?: { cause?: unknown }) {
    super(`invalid ${source}: ${field}: ${detail}`, options);
  }
}

/** A search method (METHOD_NAMES in search/machine.ts). */
export type MethodName = SearchMethodName;

/** Everything a run needs, validated, with defaults and planned schedules filled in. */
export interface RunPlan {
  readonly model: string;
  readonly method: MethodName;
  readonly preset: PresetName;
  readonly seed: number;
  readonly budgetNfe: number;
  readonly sampler: SamplerConfig;
  readonly guidanceScale: number;
  readonly prompt: string | undefined;
  readonly negativePrompt: string;
  /** Reward manifest overriding the bundle's, as an absolute path. */
  readonly rewards: string | undefined;
  readonly providers: readonly ExecutionProvider[];
  /** Options of the CUDA provider (absent: onnxruntime's defaults). */
  readonly cuda: CudaProviderOptions | undefined;
  readonly evosearch: Omit<EvoSearchConfig, 'noiseStd' | 'seed' | 'steps'>;
  /**
   * Adaptive EvoSearch's own settings; it takes K_0, e_0, the elites, beta and the tournament from
   * `evosearch` and the budget from `budgetNfe` (docs/algorithms.md, "Adaptive EvoSearch").
   */
  readonly adaptive: AdaptivePlanSettings;
  readonly bestOfN: { readonly n: number };
  readonly particles: Omit<ParticleSearchConfig, 'seed' | 'steps'>;
  /** What each method will spend under this plan (the chosen one and the two it is compared with). */
  readonly planned: Readonly<Record<MethodName, PlannedSpend>>;
  /** Methods the budget cannot be planned for (other than the chosen one), and why. */
  readonly unavailable: Readonly<Partial<Record<MethodName, string>>>;
  readonly workers: number;
  /** gRPC workers to run on (host:port), or undefined for local worker threads. */
  readonly workersAt: readonly string[] | undefined;
  /** NATS URL of a cluster whose registered workers run the search, or undefined. */
  readonly cluster: string | undefined;
  readonly batchSize: number;
  /** Rows of every model call; undefined: the worker's default (fixed on CUDA, worker/fixed-shape-model.ts). */
  readonly callRows: number | 'off' | undefined;
  readonly out: string | undefined;
  readonly logLevel: NonNullable<RunConfigInput['logLevel']>;
  readonly progress: boolean | undefined;
  /** Workers snapshot their states to the run folder after every round (see the schema). */
  readonly snapshots: boolean;
}

/** The settings adaptive EvoSearch adds to EvoSearch's (set by the planner from the preset and the budget). */
export interface AdaptivePlanSettings {
  /** The gap from the first generation to the second, in steps (the fixed schedule's). */
  readonly firstGap: number;
  /** Delta: the base gap between later generations, in steps. */
  readonly generationGap: number;
  /** e_end: the latest index a generation may have (the fixed schedule's last). */
  readonly lastGeneration: number;
  /** tau: the relative reward spread below which the population counts as collapsed. */
  readonly collapseRatio: number;
  /** The fewest members a planned generation may have. */
  readonly minPopulation: number;
}

/** What a bundle says about itself that the plan needs: the model's own schedule and its family. */
export interface ModelDefaults {
  /** The network's noise schedule, run with the sampler the search needs (stochastic). */
  readonly sampler: SamplerConfig;
  /** The preset whose search schedules fit the model family. */
  readonly preset: PresetName;
  readonly guidanceScale?: number;
  /** The search method and NFE budget the bundle's benchmark chose for a one-minute run on 2 cores. */
  readonly method?: MethodName;
  readonly budgetNfe?: number;
  /**
   * The bundle was trained on the procedural world (its prompts follow world/prompt-grammar.ts), and
   * makes these: still images or videos (world/model-prompts.ts).
   */
  readonly world?: WorldOutput;
}
