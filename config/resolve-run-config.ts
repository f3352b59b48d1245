import { cpus } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import type { z } from 'zod';
import { plannedParticleCompute, ParticleConfigError, type ParticleSearchConfig } from '../search/particles.js';
import { bestOfNSpend, evoSearchSpend, planBestOfN, planEvoSearch, type PlannedSpend } from '../search/planner.js';
import { SearchConfigError } from '../search/search-config-error.js';
import { validateEvoSearchConfig, type EvoSearchConfig } from '../search/evosearch.js';
import { initialAdaptivePlan } from '../search/adaptive-evosearch.js';
import { ADAPTIVE_COLLAPSE_RATIO, adaptiveConfig, adaptiveField, adaptiveSettings } from './adaptive-plan.js';
import { createSampler, type SamplerConfig } from '../samplers/index.js';
import type { Sampler } from '../samplers/sampler.js';
import { SamplerConfigError } from '../samplers/sampler-config-error.js';
import { parseByteSize, type CudaProviderOptions } from '../worker/runtime/providers.js';
import { PRESETS, type PresetName } from './presets.js';
import { ConfigError, type ExecutionProvider, type MethodName, type ModelDefaults, type RunPlan } from './run-plan.js';
import { runConfigSchema, type RunConfigInput, type EXECUTION_PROVIDERS } from './run-config-schema.js';
import { checkPlanLimits, type PlanDriver } from './limits.js';
import { checkThreadCount } from '../worker/runtime/host-limits.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

export { ConfigError, type ExecutionProvider, type MethodName, type ModelDefaults, type RunPlan } from './run-plan.js';

/** Validates raw input (a parsed file, or flags) against the schema. */
export function parseRunConfig(input: unknown, source: string): RunConfigInput {
  const parsed = runConfigSchema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  throw zodToConfigError(parsed.error, source);
}

function zodToConfigError(error: z.ZodError, source: string): ConfigError {
  const lines = error.issues.map((issue) => {
    const path = issue.path.length === 0 ? '(top level)' : issue.path.map(String).join('.');
    const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
    return { path, message: `${issue.message}${keys}` };
  });
  const first = lines[0]!;
  const more = lines.slice(1).map((l) => `; ${l.path}: ${l.message}`).join('');
  return new ConfigError(first.path, `${first.message}${more}`, source);
}

/** Later layers override earlier ones, one level deep into the nested sections. */
export function mergeRunConfig(...layers: RunConfigInput[]): RunConfigInput {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const previous = merged[key];
      merged[key] = isPlainObject(value) && isPlainObject(previous) ? { ...previous, ...value } : value;
    }
  }
  return merged as RunConfigInput;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Fills in the preset, checks the pieces against each other, and plans every method to the same NFE
 * budget (within one trajectory). Contradictions are errors, never silently resolved.
 */
export function resolveRunConfig(input: RunConfigInput, source = 'config', modelDefaults?: ModelDefaults): RunPlan {
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(field, detail, source);
  };
  const preset = PRESETS[input.preset ?? modelDefaults?.preset ?? 'sd21'];
  const method = input.method ?? modelDefaults?.method ?? 'evosearch';
  // A model bundle's own schedule replaces the preset's sampler; the preset still gives the search schedules.
  const { config: sampler, sampler: samplerInstance } = resolveSampler(modelDefaults?.sampler ?? preset.sampler, input.sampler ?? {}, source);
  const steps = sampler.steps;

  const evo = input.evosearch ?? {};
  const evolutionSchedule = evo.evolutionSchedule ?? rescaleSchedule(preset.evosearch.evolutionSchedule, preset.sampler.steps, steps, fail);
  const baseShape = evo.populationSchedule ?? preset.evosearch.populationSchedule;
  if (baseShape.length !== evolutionSchedule.length + 1) {
    fail('evosearch.populationSchedule', `needs ${evolutionSchedule.length + 1} entries for the evolution schedule [${evolutionSchedule.join(', ')}] (one per generation, then the final population), got ${baseShape.length}`);
  }
  const shapeNfe = evoSearchSpend({ evolutionSchedule, populationSchedule: baseShape }, steps).nfe;
  // Without a budget: the model's measured default, unless the user fixed the schedule's shape.
  const budgetNfe = input.budgetNfe ?? (evo.populationSchedule === undefined ? modelDefaults?.budgetNfe : undefined) ?? shapeNfe;
  const evolutionary = method === 'evosearch' || method === 'evosearch-adaptive';
  if (input.budgetNfe !== undefined && evo.populationSchedule !== undefined && evolutionary && Math.abs(shapeNfe - input.budgetNfe) >= steps) {
    fail('budgetNfe', `contradicts evosearch.populationSchedule [${baseShape.join(', ')}], which spends ${shapeNfe} NFEs; set one of them (the budget scales the preset's schedule)`);
  }
  if (budgetNfe < steps) fail('budgetNfe', `${budgetNfe} NFEs does not buy one trajectory of ${steps} steps`);

  const unavailable: Partial<Record<MethodName, string>> = {};
  let schedules;
  try {
    schedules = budgetNfe === shapeNfe
      ? { evolutionSchedule, populationSchedule: baseShape }
      : planEvoSearch(budgetNfe, steps, { evolutionSchedule, populationSchedule: baseShape });
  } catch (error) {
    if (!(error instanceof SearchConfigError)) throw error;
    if (evolutionary) throw new ConfigError(error.field, error.detail, source, { cause: error });
    // Another method was asked for: a budget too small for EvoSearch is no reason to refuse it. The
    // plan keeps EvoSearch's settings with a Best-of-N shape and says why EvoSearch is not possible.
    unavailable.evosearch = error.message;
    unavailable['evosearch-adaptive'] = error.message;
    schedules = { evolutionSchedule: [], populationSchedule: [planBestOfN(budgetNfe, steps)] };
  }
  const smallest = Math.min(...schedules.populationSchedule.slice(1));
  // The preset's elites shrink with a small budget; elites the user asked for are checked as given.
  const elites = evo.elites ?? Math.min(preset.evosearch.elites, Math.max(0, smallest - 1));
  const evosearch = {
    ...schedules,
    elites,
    mutationRate: evo.mutationRate ?? preset.evosearch.mutationRate,
    tournamentFraction: evo.tournamentFraction ?? preset.evosearch.tournamentFraction,
    ...(evo.tournamentSize !== undefined ? { tournamentSize: evo.tournamentSize } : {}),
    archive: evo.archive ?? true,
    ...(evo.selection !== undefined ? { selection: evo.selection } : {}),
    ...(evo.sharingRadius !== undefined ? { sharingRadius: evo.sharingRadius } : {}),
    ...(evo.sharingAlpha !== undefined ? { sharingAlpha: evo.sharingAlpha } : {}),
  };
  if ((evo.sharingRadius !== undefined || evo.sharingAlpha !== undefined) && evo.selection !== 'sharing') {
    fail(evo.sharingRadius !== undefined ? 'evosearch.sharingRadius' : 'evosearch.sharingAlpha', "only applies with evosearch.selection 'sharing' (--selection sharing)");
  }
  const noiseStd = Array.from({ length: steps }, (_, i) => samplerInstance.noiseStd(i));
  if (method === 'evosearch') {
    try {
      validateEvoSearchConfig({ ...evosearch, steps, noiseStd, seed: 0 });
    } catch (error) {
      if (error instanceof SearchConfigError) throw new ConfigError(`evosearch.${error.field}`, error.detail, source, { cause: error });
      throw error;
    }
  }
  const adaptive = unavailable['evosearch-adaptive'] === undefined ? adaptiveSettings(evolutionSchedule, schedules.populationSchedule, steps) : null;
  let adaptiveSpend: PlannedSpend = evoSearchSpend(schedules, steps);
  if (adaptive !== null) {
    try {
      const initial = initialAdaptivePlan(adaptiveConfig({ evosearch, adaptive, budgetNfe, steps, noiseStd }));
      adaptiveSpend = evoSearchSpend(initial, steps);
    } catch (error) {
      if (!(error instanceof SearchConfigError)) throw error;
      const field = adaptiveField(error.field);
      if (method === 'evosearch-adaptive') throw new ConfigError(field, error.detail, source, { cause: error });
      unavailable['evosearch-adaptive'] = `${field}: ${error.detail}`;
    }
  }

  const n = input.bestOfN?.n ?? planBestOfN(budgetNfe, steps);
  if (input.bestOfN?.n !== undefined && input.budgetNfe !== undefined && method === 'best-of-n' && n * steps > input.budgetNfe) {
    fail('bestOfN.n', `${n} samples of ${steps} steps spend ${n * steps} NFEs, over the budget of ${input.budgetNfe}`);
  }

  const p = input.particles ?? {};
  const particleBase = {
    lambda: p.lambda ?? preset.particles.lambda,
    potential: p.potential ?? preset.particles.potential,
    // The reference launch resamples every 20 of 50 steps; other step counts keep the proportion.
    resampling: { start: p.resampling?.start ?? 0, end: p.resampling?.end ?? steps, interval: p.resampling?.interval ?? Math.max(1, Math.round((preset.particles.interval * steps) / preset.sampler.steps)) },
    adaptive: p.adaptive ?? false,
    fitness: p.fitness ?? 'x0-prediction',
  } as const;
  const particleCount = p.particles ?? planParticleCount(budgetNfe, steps, particleBase, fail);
  const particles = { ...particleBase, particles: particleCount };
  let particleSpend: PlannedSpend;
  try {
    particleSpend = plannedParticleCompute({ ...particles, steps, seed: 0 });
  } catch (error) {
    if (error instanceof ParticleConfigError) throw new ConfigError(`particles.${error.field}`, error.problem, source, { cause: error });
    throw error;
  }

  // onnxruntime's WebGPU provider keeps one GPU device per process, and model threads using it at once
  // corrupt its command stream (a segfault, seen on an H200): a process runs WebGPU models on one thread.
  const providers = input.providers ?? ['cpu'];
  const oneDevicePerProcess = providers.includes('webgpu');
  if (oneDevicePerProcess && input.workers !== undefined && input.workers > 1 && input.workersAt === undefined && input.cluster === undefined) {
    fail('workers', `the webgpu provider runs on one model thread per process (onnxruntime shares one GPU device per process, and ${input.workers} threads would crash it): use --workers 1, or one \`evosearch worker --providers webgpu\` process per GPU with --workers-at or --cluster`);
  }
  const cuda = resolveCudaOptions(input.cuda, providers, fail);
  // Two model threads on one GPU through the CUDA provider contend rather than overlap: on an H200,
  // tiny-sd at 1000 NFEs took 2.3 s (Best-of-N), 5.3 s (EvoSearch) and 2.4 s (particles) on one thread
  // against 3.0, 6.9 and 5.5 s on two (bench/reports/cuda-runtime). More threads stay allowed.
  const oneThreadPerGpu = providers[0] === 'cuda' || providers[0] === 'tensorrt';
  if (input.cluster !== undefined && input.workersAt !== undefined) fail('cluster', 'give either a cluster (--cluster, workers found through NATS) or worker addresses (--workers-at), not both');
  const model = input.model ?? 'analytic:gmm';
  if (model.startsWith('analytic:') && input.prompt !== undefined) {
    fail('prompt', `the analytic model '${model}' takes no prompt (its reward is fixed); drop --prompt or choose a model bundle`);
  }

  const plan: RunPlan = {
    model,
    method,
    preset: preset.name,
    seed: input.seed ?? 0,
    budgetNfe,
    sampler,
    guidanceScale: input.guidanceScale ?? modelDefaults?.guidanceScale ?? preset.guidanceScale,
    prompt: input.prompt,
    negativePrompt: input.negativePrompt ?? '',
    rewards: input.rewards === undefined ? undefined : resolvePath(input.rewards),
    providers,
    cuda,
    evosearch,
    adaptive: adaptive ?? { firstGap: 1, generationGap: 1, lastGeneration: 0, collapseRatio: ADAPTIVE_COLLAPSE_RATIO, minPopulation: 1 },
    bestOfN: { n },
    particles,
    planned: {
      evosearch: evoSearchSpend(schedules, steps),
      'best-of-n': bestOfNSpend(n, steps),
      particles: particleSpend,
      'evosearch-adaptive': adaptiveSpend,
    },
    unavailable,
    workers: input.workers ?? (oneDevicePerProcess || oneThreadPerGpu ? 1 : Math.max(1, Math.min(2, cpus().length))),
    workersAt: input.workersAt,
    cluster: input.cluster,
    batchSize: input.batchSize ?? 256,
    callRows: input.callRows,
    out: input.out,
    logLevel: input.logLevel ?? 'info',
    progress: input.progress,
    snapshots: input.snapshots ?? (input.cluster === undefined && input.workersAt === undefined),
  };
  checkPlanPlacement(plan, source, planDriver(input, plan));
  return plan;
}

/**
 * What a plan is checked for wherever its placement is set (a run's config, a resume's flags), before
 * any model opens or thread starts: WebGPU's one model thread per process, the thread limit, and the
 * limits of this machine and of the runtime (config/limits.ts).
 */
export function checkPlanPlacement(plan: RunPlan, source: string, driver: PlanDriver = budgetDriver(plan)): void {
  const local = plan.workersAt === undefined && plan.cluster === undefined;
  if (local && plan.providers.includes('webgpu') && plan.workers > 1) {
    throw new ConfigError('workers', `the webgpu provider runs on one model thread per process (onnxruntime shares one GPU device per process, and ${plan.workers} threads would crash it): use --workers 1, or one \`evosearch worker --providers webgpu\` process per GPU with --workers-at or --cluster`, source);
  }
  if (local) checkThreadCount(plan.workers, { what: 'worker threads', flag: '--workers', field: 'workers', otherwise: ', or run the search on `evosearch worker` processes with --workers-at or --cluster' });
  checkPlanLimits(plan, { driver });
}

function budgetDriver(plan: RunPlan): PlanDriver {
  return { flag: '--budget-nfe', field: 'budgetNfe', value: String(plan.budgetNfe), scale: plan.budgetNfe };
}

/** The flag and field that set the chosen method's population sizes: the budget, unless given directly. */
function planDriver(input: RunConfigInput, plan: RunPlan): PlanDriver {
  const budget = budgetDriver(plan);
  if (plan.method === 'best-of-n' && input.bestOfN?.n !== undefined) return { flag: '--samples', field: 'bestOfN.n', value: String(plan.bestOfN.n), scale: plan.bestOfN.n };
  if (plan.method === 'particles' && input.particles?.particles !== undefined) return { flag: '--particles', field: 'particles.particles', value: String(plan.particles.particles), scale: plan.particles.particles };
  if (plan.method === 'evosearch' && input.evosearch?.populationSchedule !== undefined) return { flag: '--population-schedule', field: 'evosearch.populationSchedule', value: plan.evosearch.populationSchedule.join(',') };
  return budget;
}

/** The CUDA options as the runtime takes them; options for a provider the run does not try are a mistake. */
export function resolveCudaOptions(input: RunConfigInput['cuda'], providers: readonly ExecutionProvider[], fail: (field: string, detail: string) => never): CudaProviderOptions | undefined {
  if (input === undefined || Object.keys(input).length === 0) return undefined;
  if (!providers.includes('cuda')) fail('cuda', `CUDA provider options are set but the provider list [${providers.join(', ')}] has no 'cuda'; add it (--providers cuda,cpu) or drop the --cuda-* options`);
  // onnxruntime-node 1.29's binding hands the CUDA provider only its device id; the other options go
  // as ep.cuda.* session entries, and the provider was not seen to read them: a 32 MiB memory limit
  // did not stop a session holding a 64 MiB weight on an H200 (bench/reports/cuda-runtime). A limit
  // that does nothing is refused, not accepted (bench/cuda-options.ts probes them on a new binding).
  const notApplied = 'onnxruntime-node 1.29 passes only the device id to its CUDA provider, and this option was measured to have no effect through it (bench/reports/cuda-runtime/README.md)';
  if (input.memoryLimit !== undefined) {
    const bytes = typeof input.memoryLimit === 'number' ? input.memoryLimit : parseByteSize(input.memoryLimit);
    if (bytes === null) fail('cuda.memoryLimit', `'${String(input.memoryLimit)}' is not a size; give bytes or a size such as 8GiB or 512MiB`);
    fail('cuda.memoryLimit', `cannot be applied: ${notApplied}; bound a worker's GPU memory by giving it its own GPU (CUDA_VISIBLE_DEVICES) or a MIG slice`);
  }
  if (input.convAlgoSearch !== undefined) fail('cuda.convAlgoSearch', `cannot be applied: ${notApplied}; cuDNN's exhaustive search, onnxruntime's default, is what runs`);
  return {
    ...(input.deviceId !== undefined ? { deviceId: input.deviceId } : {}),
    ...(input.tf32 !== undefined ? { tf32: input.tf32 } : {}),
  };
}

/** Noise-schedule fields DDIM and DDPM share: switching between them keeps the preset's schedule. */
const VP_SCHEDULE_FIELDS = ['num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'prediction_type', 'timestep_spacing', 'steps_offset', 'clip_sample'];
const VP_KINDS = ['ddim', 'ddpm'];

/**
 * The preset's sampler with overrides. Switching the sampler kind starts from that kind's defaults,
 * except that DDIM <-> DDPM keeps the preset's noise schedule (the model was trained on it).
 */
function resolveSampler(base: SamplerConfig, overrides: NonNullable<RunConfigInput['sampler']>, source: string): { config: SamplerConfig; sampler: Sampler } {
  const switching = overrides.kind !== undefined && overrides.kind !== base.kind;
  const keepSchedule = switching && VP_KINDS.includes(base.kind) && VP_KINDS.includes(overrides.kind!);
  const carried = keepSchedule ? Object.fromEntries(Object.entries(base).filter(([key]) => VP_SCHEDULE_FIELDS.includes(key))) : {};
  const start: Record<string, unknown> = switching ? { ...carried, kind: overrides.kind, steps: base.steps } : { ...base };
  const config = { ...start, ...stripUndefined(overrides) } as unknown as SamplerConfig;
  try {
    return { config, sampler: createSampler(config) };
  } catch (error) {
    if (error instanceof SamplerConfigError) throw new ConfigError(`sampler.${error.field}`, error.detail, source, { cause: error });
    throw error;
  }
}

function stripUndefined(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}

/** A preset's generation indices are written for N = 50; other step counts get them scaled. */
function rescaleSchedule(schedule: readonly number[], from: number, to: number, fail: (field: string, detail: string) => never): number[] {
  if (from === to) return [...schedule];
  // The last step of some stochastic samplers injects no noise (SDE DPM-Solver++ lands on sigma 0), so a
  // rescaled generation index stays at least two steps before the end.
  const scaled = schedule.map((e) => Math.min(Math.round((e * to) / from), Math.max(0, to - 2)));
  scaled.forEach((e, g) => {
    if (e >= to || (g > 0 && e <= scaled[g - 1]!)) {
      fail('evosearch.evolutionSchedule', `the preset's schedule [${schedule.join(', ')}] (for ${from} steps) does not fit ${to} steps; give an explicit evolutionSchedule`);
    }
  });
  return scaled;
}

/** The most particles whose planned NFE fits the budget. */
function planParticleCount(budgetNfe: number, steps: number, base: Omit<ParticleSearchConfig, 'particles' | 'seed' | 'steps'>, fail: (field: string, detail: string) => never): number {
  // The spend is k times one particle's, so the largest k is found by one division; the loop only
  // guards the rounding (counting down from budget / steps took minutes for rollout fitness at 1e9).
  const perParticle = plannedParticleCompute({ ...base, particles: 1, steps, seed: 0 }).nfe;
  let k = Math.min(Math.floor(budgetNfe / steps), Math.floor(budgetNfe / perParticle) + 1);
  while (k > 0 && plannedParticleCompute({ ...base, particles: k, steps, seed: 0 }).nfe > budgetNfe) k -= 1;
  if (k < 1) fail('budgetNfe', `${budgetNfe} NFEs does not fit one particle with ${base.fitness ?? 'x0-prediction'} fitness over ${steps} steps`);
  return k;
}
