/**
 * How many workers a run could keep busy, from what its plan knows: an autoscaler sums it over the
 * queued and running runs (evosearch_coordinator_workers_wanted) and starts or stops workers toward
 * it. A worker has work in a round only while it holds states, so a run can use at most as many
 * workers as its largest round has states (EvoSearch: the largest population of its schedule; adaptive
 * EvoSearch: that of the schedule it starts with;
 * Best-of-N: its samples; particle sampling: its particles). Where every model call runs a fixed
 * number of rows (`callRows`, and CUDA's default of 32: worker/fixed-shape-model.ts), a worker runs
 * that many states for the price of one, so the run wants that many times fewer workers. Where calls
 * take the work as it comes (CPU, WebGPU), each state more on a worker costs it more, so every state
 * could have a worker. The CUDA default is judged from the run's first provider: a worker started
 * with its own --providers may differ.
 */
import type { RunPlan } from '../../config/run-plan.js';
import { callRowsFor } from '../../worker/fixed-shape-model.js';
import { initialAdaptiveSchedule } from '../../config/adaptive-plan.js';

export function workersWanted(plan: RunPlan): number {
  const rows = callRowsFor(plan.callRows, plan.providers[0], plan.batchSize) ?? 1;
  return Math.max(1, Math.ceil(largestRound(plan) / rows));
}

/** The most states a round of the plan holds. */
function largestRound(plan: RunPlan): number {
  switch (plan.method) {
    case 'evosearch':
      return Math.max(...plan.evosearch.populationSchedule);
    case 'best-of-n':
      return plan.bestOfN.n;
    case 'evosearch-adaptive':
      // Its populations are decided as it runs; the schedule it starts with is the best guess there is
      // (the first population is the largest of it whenever the budget is spread over several generations).
      return Math.max(...initialAdaptiveSchedule(plan).populationSchedule);
    case 'particles':
      return plan.particles.particles;
  }
}
