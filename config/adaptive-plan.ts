/**
 * Adaptive EvoSearch in the run plan: its settings from the fixed EvoSearch plan, the machine's
 * configuration from a plan, and the schedule it starts with (what `evosearch plan`, the limits and the
 * autoscaler can know before it runs).
 */
import { createSampler } from '../samplers/index.js';
import { initialAdaptivePlan, type AdaptiveEvoSearchConfig } from '../search/adaptive-evosearch.js';
import type { AdaptivePlanSettings, RunPlan } from './run-plan.js';

/**
 * Below this spread of rewards, relative to the first generation's, adaptive EvoSearch counts the
 * population as collapsed (docs/algorithms.md, "Adaptive EvoSearch").
 */
export const ADAPTIVE_COLLAPSE_RATIO = 0.5;

/**
 * Adaptive EvoSearch's settings from the fixed plan: its first gap and last index are the fixed
 * schedule's, the base gap is the closest spacing of its generations (the SDE phase: 5 steps of
 * tiny-sd's 25, 10 of the presets' 50), and no
 * generation is thinner than the fixed schedule's thinnest at this budget (at least 2, so a tournament
 * has a choice).
 */
export function adaptiveSettings(evolutionSchedule: readonly number[], populationSchedule: readonly number[], steps: number): AdaptivePlanSettings {
  const first = evolutionSchedule[0] ?? 0;
  const gaps = evolutionSchedule.slice(1).map((e, g) => e - evolutionSchedule[g]!);
  const generationGap = gaps.length > 0 ? Math.min(...gaps) : Math.max(1, Math.floor((steps - first) / 4));
  const firstGap = gaps[0] ?? generationGap;
  const lastGeneration = evolutionSchedule.length > 1 ? evolutionSchedule.at(-1)! : Math.max(first, steps - 2);
  const later = populationSchedule.slice(1);
  const minPopulation = Math.max(2, later.length > 0 ? Math.min(...later) : 2);
  return { firstGap, generationGap, lastGeneration, collapseRatio: ADAPTIVE_COLLAPSE_RATIO, minPopulation };
}

/** The adaptive machine's configuration from a plan's parts. */
export function adaptiveConfig(parts: { evosearch: RunPlan['evosearch']; adaptive: AdaptivePlanSettings; budgetNfe: number; steps: number; noiseStd: readonly number[]; seed?: number }): AdaptiveEvoSearchConfig {
  const { evosearch, adaptive, budgetNfe, steps, noiseStd } = parts;
  return {
    steps,
    budgetNfe,
    firstGeneration: evosearch.evolutionSchedule[0] ?? 0,
    initialPopulation: evosearch.populationSchedule[0]!,
    ...adaptive,
    elites: evosearch.elites,
    mutationRate: evosearch.mutationRate,
    tournamentFraction: evosearch.tournamentFraction,
    ...(evosearch.tournamentSize !== undefined ? { tournamentSize: evosearch.tournamentSize } : {}),
    archive: evosearch.archive,
    noiseStd,
    seed: parts.seed ?? 0,
  };
}

/** The run configuration's field behind a field of the adaptive machine's configuration. */
export function adaptiveField(field: string): string {
  if (field === 'budgetNfe') return 'budgetNfe';
  if (field === 'firstGeneration') return 'evosearch.evolutionSchedule[0]';
  if (field === 'initialPopulation') return 'evosearch.populationSchedule[0]';
  if (field === 'steps' || field === 'noiseStd') return 'sampler.steps';
  if (['firstGap', 'generationGap', 'lastGeneration', 'collapseRatio', 'minPopulation'].includes(field)) return `adaptive.${field}`;
  return `evosearch.${field}`;
}


/** The machine's configuration for a resolved plan (its sampler gives the mutation noise). */
export function adaptiveConfigOf(plan: RunPlan): AdaptiveEvoSearchConfig {
  const sampler = createSampler(plan.sampler);
  const noiseStd = Array.from({ length: sampler.steps }, (_, i) => sampler.noiseStd(i));
  return adaptiveConfig({ evosearch: plan.evosearch, adaptive: plan.adaptive, budgetNfe: plan.budgetNfe, steps: sampler.steps, noiseStd, seed: plan.seed });
}

/** The schedule adaptive EvoSearch starts with under a plan (it re-plans after every generation). */
export function initialAdaptiveSchedule(plan: RunPlan): { evolutionSchedule: number[]; populationSchedule: number[] } {
  return initialAdaptivePlan(adaptiveConfigOf(plan));
}
