import type { MethodName, RunPlan } from './resolve-run-config.js';
import { initialAdaptiveSchedule } from './adaptive-plan.js';

/** The schedule a method gets under a plan, in words (`evosearch plan`, benchmarks). */
export function describeSchedule(plan: RunPlan, method: MethodName): string {
  switch (method) {
    case 'evosearch':
      return `E=[${plan.evosearch.evolutionSchedule.join(',')}] K=[${plan.evosearch.populationSchedule.join(',')}] elites=${plan.evosearch.elites}`;
    case 'evosearch-adaptive': {
      const start = initialAdaptiveSchedule(plan);
      const a = plan.adaptive;
      return `B=${plan.budgetNfe} starts E=[${start.evolutionSchedule.join(',')}] K=[${start.populationSchedule.join(',')}], re-planned each generation (gap ${a.generationGap}, collapse below ${a.collapseRatio} of the first spread, populations >= ${a.minPopulation}) elites=${plan.evosearch.elites}`;
    }
    case 'best-of-n':
      return `n=${plan.bestOfN.n}`;
    case 'particles': {
      const r = plan.particles.resampling!;
      return `k=${plan.particles.particles} lambda=${plan.particles.lambda} potential=${plan.particles.potential} every ${r.interval} in [${r.start}, ${r.end}] fitness=${plan.particles.fitness}`;
    }
  }
}
