/**
 * What the search-quality benchmark runs: searches grouped into units that share one opened model
 * (a bundle and a prompt), so shards can split the work without loading a model twice.
 */
import type { MethodName } from '../../config/resolve-run-config.js';
import type { RunConfigInput } from '../../config/run-config-schema.js';
import { METHOD_NAMES } from '../../search/machine.js';

/**
 * grid: every method at every budget (the main comparison). sweep: EvoSearch settings at one budget.
 * equal-time: a small and a large model, timed on the same machine, for the equal-wall-time comparison.
 */
export type StudyName = 'grid' | 'sweep' | 'equal-time';

export interface SearchJob {
  readonly study: StudyName;
  readonly method: MethodName;
  readonly budgetNfe: number;
  readonly seed: number;
  /** A name for the settings ('default' or a sweep variant). */
  readonly variant: string;
  readonly evosearch?: NonNullable<RunConfigInput['evosearch']>;
}

export interface JobUnit {
  readonly bundle: string;
  readonly prompt: string;
  readonly promptIndex: number;
  /** Relative cost of one NFE (a video NFE costs several image NFEs), for balancing shards. */
  readonly nfeCost: number;
  readonly jobs: readonly SearchJob[];
}

export const METHODS: readonly MethodName[] = METHOD_NAMES;

/** EvoSearch settings tried at the default budget (the preset's values are the 'default' row). */
export const SWEEP_VARIANTS: Readonly<Record<string, NonNullable<RunConfigInput['evosearch']>>> = {
  'mutation 0.1': { mutationRate: 0.1 },
  'mutation 0.3': { mutationRate: 0.3 },
  'mutation 0.4': { mutationRate: 0.4 },
  'mutation 0.5': { mutationRate: 0.5 },
  'elites 1': { elites: 1 },
  'tournament 0.5': { tournamentFraction: 0.5 },
  'no archive': { archive: false },
  /** Tournaments on fitness shared over the guidance reward's embeddings (issue 20: population diversity). */
  sharing: { selection: 'sharing' },
};

export interface GridOptions {
  readonly bundles: readonly { readonly name: string; readonly video: boolean }[];
  readonly imagePrompts: readonly string[];
  readonly videoPrompts: readonly string[];
  readonly imageBudgets: readonly number[];
  readonly videoBudgets: readonly number[];
  /** Seeds firstSeed, firstSeed + 1, ... (seeds in all). */
  readonly seeds: number;
  readonly firstSeed: number;
  /** Run the methods-by-budgets grid (false: only the sweep). */
  readonly grid: boolean;
  /** Bundles and budgets of the settings sweep, and the variants it tries (names of SWEEP_VARIANTS). */
  readonly sweep: readonly { readonly bundle: string; readonly budget: number }[];
  readonly variants: readonly string[];
  /** EvoSearch settings (names of SWEEP_VARIANTS) run beside the methods at every budget of the grid. */
  readonly gridVariants?: readonly string[];
}

function variantSettings(variant: string): NonNullable<RunConfigInput['evosearch']> {
  const evosearch = SWEEP_VARIANTS[variant];
  if (evosearch === undefined) throw new Error(`unknown sweep variant '${variant}'; known: ${Object.keys(SWEEP_VARIANTS).join(', ')}`);
  return evosearch;
}

export function gridUnits(options: GridOptions): JobUnit[] {
  const units: JobUnit[] = [];
  for (const bundle of options.bundles) {
    const prompts = bundle.video ? options.videoPrompts : options.imagePrompts;
    const budgets = bundle.video ? options.videoBudgets : options.imageBudgets;
    prompts.forEach((prompt, promptIndex) => {
      const jobs: SearchJob[] = [];
      for (let seed = options.firstSeed; seed < options.firstSeed + options.seeds; seed++) {
        if (options.grid) {
          for (const budgetNfe of budgets) {
            for (const method of METHODS) jobs.push({ study: 'grid', method, budgetNfe, seed, variant: 'default' });
            for (const variant of options.gridVariants ?? []) jobs.push({ study: 'grid', method: 'evosearch', budgetNfe, seed, variant, evosearch: variantSettings(variant) });
          }
        }
        for (const { budget } of options.sweep.filter((s) => s.bundle === bundle.name)) {
          jobs.push({ study: 'sweep', method: 'evosearch', budgetNfe: budget, seed, variant: 'default' });
          for (const variant of options.variants) jobs.push({ study: 'sweep', method: 'evosearch', budgetNfe: budget, seed, variant, evosearch: variantSettings(variant) });
        }
      }
      if (jobs.length === 0) return;
      units.push({ bundle: bundle.name, prompt, promptIndex, nfeCost: bundle.video ? 6 : 1, jobs });
    });
  }
  return units;
}

export interface EqualTimeOptions {
  readonly small: string;
  readonly large: string;
  readonly prompts: readonly string[];
  readonly smallBudgets: readonly number[];
  readonly largeBudgets: readonly number[];
  /** Steps of one trajectory of the large model: its budget without search. */
  readonly largeSteps: number;
  /** Independent single samples of the large model per prompt (its quality without search is their mean). */
  readonly noSearchSamples: number;
}

/** The small model with search and the large one with and without, on the same prompts and machine. */
export function equalTimeUnits(options: EqualTimeOptions): JobUnit[] {
  const units: JobUnit[] = [];
  options.prompts.forEach((prompt, promptIndex) => {
    const small: SearchJob[] = [];
    for (const budgetNfe of options.smallBudgets) for (const method of ['evosearch', 'best-of-n'] as const) small.push({ study: 'equal-time', method, budgetNfe, seed: 1, variant: 'default' });
    if (small.length > 0) units.push({ bundle: options.small, prompt, promptIndex, nfeCost: 1, jobs: small });
    const large: SearchJob[] = [];
    for (let seed = 1; seed <= options.noSearchSamples; seed++) large.push({ study: 'equal-time', method: 'best-of-n', budgetNfe: options.largeSteps, seed, variant: 'no search' });
    for (const budgetNfe of options.largeBudgets) large.push({ study: 'equal-time', method: 'evosearch', budgetNfe, seed: 1, variant: 'default' });
    if (large.length > 0) units.push({ bundle: options.large, prompt, promptIndex, nfeCost: 2, jobs: large });
  });
  return units;
}

/**
 * Shard `index` of `count`: units dealt greedily, heaviest first, to the least-loaded shard, so every
 * shard computes the same assignment and the shards finish at about the same time.
 */
export function shard(units: readonly JobUnit[], index: number, count: number): JobUnit[] {
  const cost = (u: JobUnit) => u.jobs.reduce((a, j) => a + j.budgetNfe, 0) * u.nfeCost;
  const ordered = [...units].sort((a, b) => cost(b) - cost(a) || a.bundle.localeCompare(b.bundle) || a.promptIndex - b.promptIndex);
  const load = new Array<number>(count).fill(0);
  const mine: JobUnit[] = [];
  for (const unit of ordered) {
    const target = load.indexOf(Math.min(...load));
    load[target] = (load[target] ?? 0) + cost(unit);
    if (target === index) mine.push(unit);
  }
  return mine;
}
