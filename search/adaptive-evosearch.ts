import type { SearchCommand, CommandResult, CandidateId, RolloutItem } from '../proto/commands.js';
import { NoiseSource } from '../random/noise-source.js';
import type { SearchMachine, SearchProgress, SearchRound } from './machine.js';
import { elites as pickElites, tournamentSize, tournamentWinners, type Scored } from './selection.js';
import { SearchConfigError } from './search-config-error.js';
import { EvolutionMachine } from './evolution-machine.js';
import type { EvoSearchConfig } from './evosearch.js';
import { modeShape, planRemaining, readSpread, type AdaptiveMode, type RemainingPlan, type RemainingRequest, type SpreadReading } from './adaptive-schedule.js';

/**
 * Adaptive EvoSearch parameters (docs/algorithms.md, "Adaptive EvoSearch"). The run starts like
 * EvoSearch (K_0 at e_0); every later generation index and population is decided during the run from
 * the rewards and the budget left. The fields it shares with EvoSearch are EvoSearch's (documented there).
 */
export interface AdaptiveEvoSearchConfig extends Pick<EvoSearchConfig, 'steps' | 'elites' | 'mutationRate' | 'tournamentFraction' | 'tournamentSize' | 'archive' | 'noiseStd' | 'seed'> {
  /** B: the NFEs the run may spend; it ends within one final-population member of it. */
  readonly budgetNfe: number;
  /** e_0: the index of the first generation. */
  readonly firstGeneration: number;
  /** K_0: the population of the first generation. */
  readonly initialPopulation: number;
  /** The gap from e_0 to the second generation (the first has no earlier spread to compare with). */
  readonly firstGap: number;
  /** Delta: the base gap between later generations (explore halves the next one, a collapse doubles it). */
  readonly generationGap: number;
  /** e_end: the latest index a generation may have (the fixed schedule's last). */
  readonly lastGeneration: number;
  /** tau: the rewards count as collapsed when their spread falls below tau times the first generation's. */
  readonly collapseRatio: number;
  /** No generation is planned with fewer members than this (the final population may have fewer). */
  readonly minPopulation: number;
}

/** One decision of the run: what a generation's rewards said and the rest of the run planned from them. */
export interface AdaptiveDecision {
  readonly generation: number;
  readonly step: number;
  readonly reading: SpreadReading;
  /** NFEs left after the generation's rollout. */
  readonly budgetLeft: number;
  readonly plan: RemainingPlan;
}

/** The rollout round of a generation, as AdaptiveEvoSearch's phase (evolution-machine.ts) carries it. */
interface RolloutPhase {
  readonly kind: 'rollout';
  readonly generation: number;
  readonly step: number;
  readonly items: readonly RolloutItem[];
}

/** The cost of the first generation and one final sample after it: the least budget a run can have. */
export function adaptiveMinimumBudget(steps: number, firstGeneration: number, initialPopulation: number): number {
  return initialPopulation * steps + (steps - firstGeneration);
}

/** Whether a generation may sit at step `e`: x_T takes the x_T mutation, later indices need the sampler's noise. */
export function usableGenerationStep(noiseStd: readonly number[], e: number): boolean {
  return e === 0 || noiseStd[e]! > 0;
}

export function validateAdaptiveEvoSearchConfig(config: AdaptiveEvoSearchConfig): void {
  const fail = (field: string, message: string): never => {
    throw new SearchConfigError(field, message);
  };
  const { steps, firstGeneration: e0, initialPopulation: k0 } = config;
  if (!Number.isInteger(steps) || steps < 2) fail('steps', `must be an integer of at least 2 (a generation and a final step), got ${steps}`);
  if (config.noiseStd.length < steps) fail('noiseStd', `needs one entry per step (${steps}), got ${config.noiseStd.length}`);
  if (!Number.isInteger(e0) || e0 < 0 || e0 > steps - 2) fail('firstGeneration', `must be an integer step index in [0, ${steps - 2}], got ${e0}`);
  if (!usableGenerationStep(config.noiseStd, e0)) {
    fail('firstGeneration', `step ${e0} injects no noise (the sampler is deterministic there), so the SDE mutation has no strength; use a stochastic sampler (DDIM eta > 0, DDPM, flow SDE DPM-Solver++)`);
  }
  if (!Number.isInteger(k0) || k0 < 1) fail('initialPopulation', `must be a positive integer, got ${k0}`);
  if (!Number.isInteger(config.budgetNfe) || config.budgetNfe < 1) fail('budgetNfe', `must be a positive integer, got ${config.budgetNfe}`);
  const minimum = adaptiveMinimumBudget(steps, e0, k0);
  if (config.budgetNfe < minimum) {
    fail('budgetNfe', `${config.budgetNfe} NFEs is too small: the first generation of ${k0} at step ${e0} and one final sample cost ${minimum}; raise the budget or lower the first population`);
  }
  if (!Number.isInteger(config.firstGap) || config.firstGap < 1) fail('firstGap', `must be a positive integer number of steps, got ${config.firstGap}`);
  if (!Number.isInteger(config.generationGap) || config.generationGap < 1) fail('generationGap', `must be a positive integer number of steps, got ${config.generationGap}`);
  if (!Number.isInteger(config.lastGeneration) || config.lastGeneration < e0 || config.lastGeneration > steps - 1) {
    fail('lastGeneration', `must be an integer step index in [${e0}, ${steps - 1}] (from the first generation to the last step), got ${config.lastGeneration}`);
  }
  if (!(config.collapseRatio > 0 && config.collapseRatio < 1)) fail('collapseRatio', `must be in (0, 1), got ${config.collapseRatio}`);
  if (!Number.isInteger(config.minPopulation) || config.minPopulation < 1) fail('minPopulation', `must be a positive integer, got ${config.minPopulation}`);
  if (!Number.isInteger(config.elites) || config.elites < 0) fail('elites', `must be a non-negative integer, got ${config.elites}`);
  if (!(config.mutationRate > 0 && config.mutationRate < 1)) fail('mutationRate', `must be in (0, 1), got ${config.mutationRate}`);
  if (!(config.tournamentFraction > 0 && config.tournamentFraction <= 1)) fail('tournamentFraction', `must be in (0, 1], got ${config.tournamentFraction}`);
  if (config.tournamentSize !== undefined && (!Number.isInteger(config.tournamentSize) || config.tournamentSize < 1)) {
    fail('tournamentSize', `must be a positive integer, got ${config.tournamentSize}`);
  }
}

/**
 * The schedule the run starts with: K_0 at e_0, then the rest planned as after a first generation
 * that explores (which it always does when its rewards differ). The run re-plans after every
 * generation, so this is what `evosearch plan` can show, not a promise.
 */
export function initialAdaptivePlan(config: AdaptiveEvoSearchConfig): { evolutionSchedule: number[]; populationSchedule: number[]; nfe: number } {
  validateAdaptiveEvoSearchConfig(config);
  const { steps, firstGeneration: e0, initialPopulation: k0 } = config;
  const rest = planRemaining(remainingRequest(config, e0, config.budgetNfe - k0 * steps, 'explore', 0));
  return { evolutionSchedule: [e0, ...rest.evolutionSchedule], populationSchedule: [k0, ...rest.populationSchedule], nfe: k0 * steps + rest.nfe };
}

/** What the rest of the run is planned from, after generation `generation` at `from` put the search in `mode`. */
function remainingRequest(config: AdaptiveEvoSearchConfig, from: number, budgetLeft: number, mode: AdaptiveMode, generation: number): RemainingRequest {
  const shape = modeShape(mode, config.generationGap);
  return {
    from,
    budgetLeft,
    steps: config.steps,
    ...shape,
    // After the first generation there is no earlier spread to judge by: its next gap is the fixed schedule's.
    nextGap: generation === 0 ? config.firstGap : shape.nextGap,
    gap: config.generationGap,
    lastGeneration: config.lastGeneration,
    minPopulation: config.minPopulation,
    usable: (e) => usableGenerationStep(config.noiseStd, e),
  };
}

/**
 * Adaptive EvoSearch as a pure state machine. The rounds are EvoSearch's (evosearch.ts): a
 * generation's rollout shares its round with the previous generation's selection, mutation and
 * advance, and the final population is advanced to x0 and scored. What differs is when the next
 * generation happens and how large it is: both are planned when the rollout's rewards arrive
 * (adaptive-schedule.ts), from those rewards and the NFEs left. Only the next generation of a plan is
 * kept; the rest is planned again after it. Archived states are kept at the indices of the plan in
 * force when they are rolled out past; those at an index the run no longer visits are dropped when
 * the run passes it, unused (they cost no NFE: the rollout passed them anyway). The round driving is
 * EvolutionMachine's, shared with EvoSearch.
 */
export class AdaptiveEvoSearch extends EvolutionMachine<RolloutPhase> implements SearchMachine {
  readonly method = 'evosearch-adaptive' as const;
  private readonly noise: NoiseSource;
  private individuals: CandidateId[] = [];
  /** Archived candidates by the step index they sit at. */
  private readonly archived = new Map<number, CandidateId[]>();
  /** The later generation indices of the plan in force (the first is the next generation's). */
  private plannedSteps: readonly number[] = [];
  private readonly decisionsMade: AdaptiveDecision[] = [];
  private firstSpread: number | undefined;
  /** Rollout generations issued so far, and the step of the latest. */
  private issuedGenerations = 0;
  private issuedStep = -1;
  private spent = 0;

  constructor(private readonly config: AdaptiveEvoSearchConfig) {
    super('AdaptiveEvoSearch');
    validateAdaptiveEvoSearchConfig(config);
    this.noise = new NoiseSource(config.seed);
    this.plannedSteps = initialAdaptivePlan(config).evolutionSchedule.slice(1);
  }

  protected override start(): SearchRound {
    const { firstGeneration: e0, initialPopulation: k0 } = this.config;
    const { ids, commands } = this.ledger.initialPopulation(k0, e0);
    this.spent += k0 * e0;
    this.individuals = ids;
    return this.rolloutRound(0, e0, commands);
  }

  progress(): SearchProgress {
    const kind = this.phase.kind;
    // The generations issued so far, those planned after the latest, and the final population.
    const generations = kind === 'done' || kind === 'cleanup' ? this.generationsDone
      : kind === 'final' ? this.issuedGenerations + 1
      : kind === 'start' ? 1 + this.plannedSteps.length + 1
      : this.issuedGenerations + this.plannedSteps.filter((s) => s > this.issuedStep).length + 1;
    return {
      generation: this.generationsDone,
      generations,
      best: this.ledger.best.current,
      lastRoundRewards: this.lastRewards,
    };
  }

  /** Every decision so far: what each generation's rewards said and the plan made from them. */
  decisions(): readonly AdaptiveDecision[] {
    return this.decisionsMade;
  }

  /** The NFEs the commands issued so far spend (the machine's own count, from the same formula). */
  plannedNfe(): number {
    return this.spent;
  }

  private rolloutRound(generation: number, step: number, before: SearchCommand[]): SearchRound {
    const { steps } = this.config;
    const later = this.config.archive ? this.plannedSteps.filter((s) => s > step) : [];
    const items = this.ledger.rolloutItems(this.individuals, step, steps, generation, later, (_offset, at, id) => this.archivedAt(at).push(id));
    this.spent += items.length * (steps - step);
    this.issuedGenerations += 1;
    this.issuedStep = step;
    this.phase = { kind: 'rollout', generation, step, items };
    const commands = [...before, ...this.ledger.takeDrops(), { kind: 'rollout' as const, items }];
    return { kind: 'commands', label: `adaptive generation ${generation + 1}: roll out ${items.length} at step ${step}`, commands };
  }

  protected override acceptRollout({ generation, step, items }: RolloutPhase, results: readonly CommandResult[]): void {
    const bestBefore = this.ledger.best.current?.reward;
    this.lastRewards = this.ledger.acceptRollout(items, results).rewards;
    this.generationsDone = generation + 1;
    const bestAfter = this.ledger.best.current!.reward;
    const improved = bestBefore === undefined || bestAfter > bestBefore;
    const reading = readSpread(this.lastRewards, this.firstSpread, improved, this.config.collapseRatio);
    this.firstSpread ??= reading.spread;
    const budgetLeft = this.config.budgetNfe - this.spent;
    const plan = planRemaining(remainingRequest(this.config, step, budgetLeft, reading.mode, generation));
    this.decisionsMade.push({ generation, step, reading, budgetLeft, plan });
    this.plannedSteps = plan.evolutionSchedule;
    this.selectAndAdvance(generation, step, plan);
  }

  private selectAndAdvance(generation: number, step: number, plan: RemainingPlan): void {
    const { steps } = this.config;
    const pool: Scored[] = [...this.individuals, ...(this.archived.get(step) ?? [])].map((id) => ({ id, reward: this.ledger.lineage.get(id).reward! }));
    this.archived.delete(step);
    // Archived states at indices the new plan skips will never join a pool: free them now.
    const stale: CandidateId[] = [];
    for (const [at, ids] of this.archived) {
      if (at <= step || !plan.evolutionSchedule.includes(at)) {
        stale.push(...ids);
        this.archived.delete(at);
      }
    }
    const nextSize = plan.populationSchedule[0]!;
    const eliteCount = Math.min(this.config.elites, nextSize, pool.length);
    const kept = pickElites(pool, eliteCount).map((c) => c.id);
    const size = tournamentSize(pool.length, this.config.tournamentFraction, this.config.tournamentSize);
    const parents = tournamentWinners(pool, nextSize - eliteCount, size, this.noise, generation);
    const mutations = this.ledger.mutations(parents.map((p) => p.id), step, generation + 1, this.config.mutationRate, this.config.noiseStd);
    const population = [...kept, ...mutations.map((m) => m.child)];
    const survivors = new Set(kept);
    const unused = [...pool.map((c) => c.id).filter((id) => !survivors.has(id)), ...stale];
    const commands: SearchCommand[] = [...this.ledger.takeDrops()];
    if (mutations.length > 0) commands.push({ kind: 'mutate', step, items: mutations });
    if (unused.length > 0) commands.push({ kind: 'drop', ids: unused });
    const last = plan.evolutionSchedule.length === 0;
    const to = last ? steps : plan.evolutionSchedule[0]!;
    this.ledger.advanceAll(population, step, to);
    this.spent += population.length * (to - step);
    commands.push({ kind: 'advance', ids: population, from: step, to, purpose: 'advance', score: last });
    if (last) {
      this.phase = { kind: 'final', ids: population };
      this.pendingRound = { kind: 'commands', label: `adaptive final: ${population.length} to x0`, commands };
    } else {
      this.individuals = population;
      this.pendingRound = this.rolloutRound(generation + 1, to, commands);
    }
  }

  private archivedAt(step: number): CandidateId[] {
    let list = this.archived.get(step);
    if (list === undefined) this.archived.set(step, (list = []));
    return list;
  }
}
