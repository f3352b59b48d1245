import type { RunPlan } from '../../config/resolve-run-config.js';
import type { Sampler } from '../../samplers/sampler.js';
import { EvoSearch } from '../../search/evosearch.js';
import type { SearchMachine } from '../../search/machine.js';
import { createParticleSearch } from '../../search/particles.js';
import { AdaptiveEvoSearch } from '../../search/adaptive-evosearch.js';
import { adaptiveConfig } from '../../config/adaptive-plan.js';

/** The search machine a plan asks for. Best-of-N is EvoSearch with an empty evolution schedule. */
export function createSearch(plan: RunPlan, sampler: Sampler): SearchMachine {
  const steps = sampler.steps;
  const noiseStd = Array.from({ length: steps }, (_, i) => sampler.noiseStd(i));
  switch (plan.method) {
    case 'evosearch':
      return new EvoSearch({ ...plan.evosearch, steps, noiseStd, seed: plan.seed });
    case 'best-of-n':
      return new EvoSearch({ ...plan.evosearch, evolutionSchedule: [], populationSchedule: [plan.bestOfN.n], elites: 0, steps, noiseStd, seed: plan.seed });
    case 'evosearch-adaptive':
      return new AdaptiveEvoSearch(adaptiveConfig({ evosearch: plan.evosearch, adaptive: plan.adaptive, budgetNfe: plan.budgetNfe, steps, noiseStd, seed: plan.seed }));
    case 'particles':
      return createParticleSearch({ ...plan.particles, steps, seed: plan.seed });
  }
}
