import type { SearchOutcome } from '../../coordinator/engine/run-search.js';

/**
 * What a search decided, for comparing two runs that must agree (placement, transport, worker loss,
 * resume): the best, every candidate's parents, origin, rewards and evaluations, the compute, and the
 * final samples that were fetched.
 */
export function searchDecisions(outcome: SearchOutcome) {
  return {
    best: outcome.best,
    candidates: outcome.candidates.map((c) => ({ parents: c.parents, origin: c.origin, reward: c.reward, evaluations: c.evaluations })),
    counters: outcome.counters,
    population: outcome.population.map((s) => [...s.data]),
  };
}
