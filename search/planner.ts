import { SearchConfigError } from './search-config-error.js';

/** What a method will spend, from its schedules alone (before anything runs). */
export interface PlannedSpend {
  readonly nfe: number;
  readonly decodes: number;
  readonly rewardCalls: number;
  /** NFE in units of one full trajectory (N steps). */
  readonly trajectories: number;
}

export interface EvoSchedules {
  readonly evolutionSchedule: readonly number[];
  readonly populationSchedule: readonly number[];
}

/**
 * EvoSearch's NFE (docs/algorithms.md, "Compute"):
 * K_0 e_0 + sum_g I_g (N - e_g) + sum_g K_{g+1} (e_{g+1} - e_g), with I_g = K_g and e_G = N.
 */
export function evoSearchSpend(schedules: EvoSchedules, steps: number): PlannedSpend {
  const { evolutionSchedule: E, populationSchedule: K } = schedules;
  if (E.length === 0) return bestOfNSpend(K[0]!, steps);
  let nfe = K[0]! * E[0]!;
  let scored = 0;
  E.forEach((e, g) => {
    const next = g + 1 < E.length ? E[g + 1]! : steps;
    nfe += K[g]! * (steps - e) + K[g + 1]! * (next - e);
    scored += K[g]!;
  });
  scored += K[E.length]!;
  return { nfe, decodes: scored, rewardCalls: scored, trajectories: nfe / steps };
}

export function bestOfNSpend(n: number, steps: number): PlannedSpend {
  return { nfe: n * steps, decodes: n, rewardCalls: n, trajectories: n };
}

/**
 * The marginal NFE cost of one more member of K_g: K_0 pays e_0 + (N - e_0) = N; K_g for g >= 1 pays
 * (e_g - e_{g-1}) + (N - e_g) = N - e_{g-1}; the final population pays N - e_{G-1}.
 */
function memberCost(E: readonly number[], steps: number, g: number): number {
  return g === 0 ? steps : steps - E[g - 1]!;
}

/**
 * Scales EvoSearch's population schedule to an NFE budget, keeping the evolution schedule and the
 * schedule's shape: every K_g is scaled down by the same factor, then members are added where the
 * schedule is furthest below its shape until no member fits. What is left over is less than one
 * trajectory, so EvoSearch, Best-of-N (n = floor(B / N)) and particles (k = floor(B / N)) spend the
 * same NFEs within one trajectory.
 */
export function planEvoSearch(budgetNfe: number, steps: number, base: EvoSchedules): EvoSchedules {
  const E = base.evolutionSchedule;
  const shape = base.populationSchedule;
  if (E.length === 0) return { evolutionSchedule: [], populationSchedule: [Math.floor(budgetNfe / steps)] };
  const minimum = evoSearchSpend({ evolutionSchedule: E, populationSchedule: shape.map(() => 1) }, steps).nfe;
  if (budgetNfe < minimum) {
    throw new SearchConfigError(
      'budgetNfe',
      `${budgetNfe} NFEs is too small for the evolution schedule [${E.join(', ')}] with ${steps} steps: one candidate per generation already costs ${minimum}; raise the budget or shorten the schedule`,
    );
  }
  const scale = budgetNfe / evoSearchSpend(base, steps).nfe;
  const K = shape.map((k) => Math.max(1, Math.floor(k * scale)));
  let spent = evoSearchSpend({ evolutionSchedule: E, populationSchedule: K }, steps).nfe;
  for (;;) {
    let pick = -1;
    for (let g = 0; g < K.length; g++) {
      if (spent + memberCost(E, steps, g) > budgetNfe) continue;
      if (pick < 0 || K[g]! / shape[g]! < K[pick]! / shape[pick]!) pick = g;
    }
    if (pick < 0) break;
    K[pick]! += 1;
    spent += memberCost(E, steps, pick);
  }
  return { evolutionSchedule: [...E], populationSchedule: K };
}

export function planBestOfN(budgetNfe: number, steps: number): number {
  const n = Math.floor(budgetNfe / steps);
  if (n < 1) throw new SearchConfigError('budgetNfe', `${budgetNfe} NFEs buys no full trajectory of ${steps} steps; Best-of-N needs at least ${steps}`);
  return n;
}
