import type { MethodName, RunPlan } from './resolve-run-config.js';

/** The schedule a method gets under a plan, in words (`evosearch plan`, benchmarks). */
export function describeSchedule(plan: RunPlan, method: MethodName): string {
  switch (method) {
    case 'evosearch':
      return `E=[${plan.evosearch.evolutionSchedule.join(',')}] K=[${plan.evosearch.populationSchedule.join(',')}] elites=${plan.evosearch.elites}`;
    case 'best-of-n':
      return `n=${plan.bestOfN.n}`;
    case 'particles': {
      const r = plan.particles.resampling!;
      return `k=${plan.particles.particles} lambda=${plan.particles.lambda} potential=${plan.particles.potential} every ${r.interval} in [${r.start}, ${r.end}] fitness=${plan.particles.fitness}`;
    }
  }
}
