import { evoSearchSpend } from './planner.js';

/**
 * The rules of adaptive EvoSearch (docs/algorithms.md, section "Adaptive EvoSearch"): after each
 * generation's rollout, how spread the rewards still are decides the shape of the rest of the run, and
 * the budget left decides its size. Pure functions of numbers, so a machine fed the same rewards plans
 * the same schedule.
 */

/**
 * - explore: the rewards still disagree (selection has signal): the next generation comes sooner and
 *   gets a larger population;
 * - steady: the spread has collapsed but the generation still found a new best: the base gap, even
 *   populations;
 * - collapsed: the spread has collapsed and nothing improved: fewer, later generations and a wider
 *   final population.
 */
export type AdaptiveMode = 'explore' | 'steady' | 'collapsed';

/** What a generation's rollout rewards say, and the mode they put the search in. */
export interface SpreadReading {
  /** Population standard deviation s_g of the generation's rollout rewards. */
  readonly spread: number;
  /** rho_g = s_g / s_0 (1 at the first generation; 0 when the first generation had no spread). */
  readonly relativeSpread: number;
  /** Whether the generation's rollouts raised the best reward of the run. */
  readonly improved: boolean;
  readonly mode: AdaptiveMode;
}

export function populationStd(rewards: readonly number[]): number {
  if (rewards.length === 0) return 0;
  const mean = rewards.reduce((a, r) => a + r, 0) / rewards.length;
  return Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / rewards.length);
}

/**
 * The mode after generation g. `firstSpread` is s_0 (undefined at the first generation, whose spread
 * is the reference); `improved` whether its rollouts raised the run's best.
 */
export function readSpread(rewards: readonly number[], firstSpread: number | undefined, improved: boolean, collapseRatio: number): SpreadReading {
  const spread = populationStd(rewards);
  const reference = firstSpread ?? spread;
  const relativeSpread = reference > 0 ? spread / reference : 0;
  const mode: AdaptiveMode = relativeSpread >= collapseRatio ? 'explore' : improved ? 'steady' : 'collapsed';
  return { spread, relativeSpread, improved, mode };
}

/** The gap to the next generation and the population weights a mode plans with (Delta: the base gap). */
export function modeShape(mode: AdaptiveMode, baseGap: number): { nextGap: number; nextWeight: number; finalWeight: number } {
  switch (mode) {
    case 'explore':
      return { nextGap: Math.max(1, Math.ceil(baseGap / 2)), nextWeight: 2, finalWeight: 1 };
    case 'steady':
      return { nextGap: baseGap, nextWeight: 1, finalWeight: 1 };
    case 'collapsed':
      return { nextGap: 2 * baseGap, nextWeight: 1, finalWeight: 2 };
  }
}

export interface RemainingRequest {
  /** e_g: the index of the generation just rolled out (the population to make sits there). */
  readonly from: number;
  /** NFEs left of the budget after that rollout. */
  readonly budgetLeft: number;
  readonly steps: number;
  /** Steps from `from` to the next generation. */
  readonly nextGap: number;
  /** Delta: the spacing of the generations after the next one. */
  readonly gap: number;
  /** e_end: no generation is planned after this index (the fixed schedule's last). */
  readonly lastGeneration: number;
  readonly nextWeight: number;
  readonly finalWeight: number;
  /** Every planned generation (and the final population) gets at least this many, or it is not planned. */
  readonly minPopulation: number;
  /** Step indices a generation may sit at (the SDE mutation needs the sampler's noise there). */
  readonly usable: (step: number) => boolean;
}

/** The rest of the run as planned now: later generation indices, then one population per generation and the final one. */
export interface RemainingPlan {
  readonly evolutionSchedule: readonly number[];
  readonly populationSchedule: readonly number[];
  readonly nfe: number;
}

/**
 * The cost of the rest of the run from index `from`, with EvoSearch's own formula (planner.ts): the
 * generation just rolled out enters it with population 0, so only the advances and rollouts still to
 * come are counted.
 */
export function remainingSpend(from: number, evolutionSchedule: readonly number[], populationSchedule: readonly number[], steps: number): number {
  return evoSearchSpend({ evolutionSchedule: [from, ...evolutionSchedule], populationSchedule: [0, ...populationSchedule] }, steps).nfe;
}

/**
 * Plans the rest of the run. The candidate indices are the next one, n = min(from + nextGap, e_end),
 * then n + Delta, n + 2 Delta, ... below e_end, then e_end (unusable indices left out). The populations
 * are filled much as planEvoSearch fills a schedule: minPopulation each, the rest in proportion to the
 * weights, then one member at a time where K_h / w_h is lowest while it fits. If minPopulation each
 * does not fit, a generation is dropped and the plan made again: first those between the next one and
 * e_end (the latest first), then e_end, then the next one, down to the final population alone (at
 * least one member), which always fits when the budget holds one member (N - from NFEs).
 */
export function planRemaining(request: RemainingRequest): RemainingPlan {
  const { from, budgetLeft, steps, gap, lastGeneration } = request;
  const candidates: number[] = [];
  if (from < lastGeneration) {
    const next = Math.min(from + request.nextGap, lastGeneration);
    for (let e = next; e < lastGeneration; e += gap) candidates.push(e);
    candidates.push(lastGeneration);
  }
  let indices = candidates.filter((e) => e > from && request.usable(e));
  for (;;) {
    // Generations are planned only with minPopulation members each (the final population too);
    // the final population alone takes what there is.
    const populations = fill(request, indices, indices.length > 0 ? request.minPopulation : 1);
    if (populations !== null) return { evolutionSchedule: indices, populationSchedule: populations, nfe: remainingSpend(from, indices, populations, steps) };
    if (indices.length === 0) break;
    indices = indices.length > 2 ? [indices[0]!, ...indices.slice(1, -2), indices.at(-1)!] : indices.slice(0, -1);
  }
  throw new RangeError(`${budgetLeft} NFEs left at step ${from} do not buy one final sample (${steps - from} NFEs): the budget invariant was broken`);
}

/** The populations of `schedule` then the final one, filling `budgetLeft`; null when `least` each does not fit. */
function fill(request: RemainingRequest, schedule: readonly number[], least: number): number[] | null {
  const { from, budgetLeft, steps } = request;
  const slots = schedule.length + 1;
  // One more member of slot h is advanced from the previous index and rolled out (or finished) from its own: N - previous.
  const cost = Array.from({ length: slots }, (_, h) => steps - (h === 0 ? from : schedule[h - 1]!));
  const weight = Array.from({ length: slots }, (_, h) => (h === slots - 1 ? (slots === 1 ? 1 : request.finalWeight) : h === 0 ? request.nextWeight : 1));
  const minimum = least * cost.reduce((a, c) => a + c, 0);
  if (minimum > budgetLeft) return null;
  const perUnit = cost.reduce((a, c, h) => a + c * weight[h]!, 0);
  const share = (budgetLeft - minimum) / perUnit;
  const K = weight.map((w) => least + Math.floor(w * share));
  let spent = K.reduce((a, k, h) => a + k * cost[h]!, 0);
  for (;;) {
    let pick = -1;
    for (let h = 0; h < slots; h++) {
      if (spent + cost[h]! > budgetLeft) continue;
      if (pick < 0 || K[h]! / weight[h]! < K[pick]! / weight[pick]!) pick = h;
    }
    if (pick < 0) return K;
    K[pick]! += 1;
    spent += cost[pick]!;
  }
}
