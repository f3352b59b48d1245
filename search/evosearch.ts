import type { SearchCommand, CommandResult, CandidateId, RolloutItem } from '../proto/commands.js';
import { NoiseSource } from '../random/noise-source.js';
import type { SearchMachine, SearchProgress, SearchRound } from './machine.js';
import { elites as pickElites, tournamentSize, tournamentWinners, type Scored } from './selection.js';
import { SearchConfigError } from './search-config-error.js';
import { EvolutionMachine } from './evolution-machine.js';
import { sharedTournamentWinners } from './fitness-sharing.js';

/** How parents are chosen: the paper's tournament on raw fitness, or the same tournament on shared fitness. */
export type EvoSelection = 'tournament' | 'sharing';
export const EVO_SELECTIONS: readonly EvoSelection[] = ['tournament', 'sharing'];

/** Defaults of the sharing option (docs/algorithms.md, "Diversity"). */
export const DEFAULT_SHARING_RADIUS = 0.4;
export const DEFAULT_SHARING_ALPHA = 1;

/** What one generation's selection saw and chose, for inspection (benchmarks, tests). */
export interface SelectionRecord {
  readonly generation: number;
  /** The pool, best raw fitness first (ties: lower id). */
  readonly ranked: readonly CandidateId[];
  readonly elites: readonly CandidateId[];
  /** The tournament winners in tournament order (one per child; a candidate may win several). */
  readonly winners: readonly CandidateId[];
}

/**
 * EvoSearch parameters (docs/algorithms.md). An empty evolution schedule is Best-of-N: K_0 independent
 * rollouts from x_T.
 */
export interface EvoSearchConfig {
  /** Sampler steps N. */
  readonly steps: number;
  /** E: step indices where a generation happens, strictly increasing, in [0, N). */
  readonly evolutionSchedule: readonly number[];
  /** K: the population entering each generation, then the final one (length |E| + 1). */
  readonly populationSchedule: readonly number[];
  /** m: the fittest candidates copied unmutated. */
  readonly elites: number;
  /** beta of the x_T mutation. */
  readonly mutationRate: number;
  /** Tournament size as a fraction of the candidates (the authors use 0.9). */
  readonly tournamentFraction: number;
  /** A fixed tournament size, overriding the fraction. */
  readonly tournamentSize?: number;
  /** Keep the states rollouts pass at later generation indices as candidates (on by default). */
  readonly archive: boolean;
  /**
   * Standard deviation of the noise the stochastic sampler injects at each step index 0..N-1
   * (the SDE mutation at index e uses noiseStd[e]).
   */
  readonly noiseStd: readonly number[];
  readonly seed: number | bigint;
  /**
   * 'tournament' (default, the paper's): tournaments on the guidance reward. 'sharing': tournaments on
   * shared fitness over the guidance reward's image embeddings (fitness-sharing.ts), which the scores
   * then must carry (WorkerSetup.scoreEmbeddings). Elites are always the fittest by raw reward.
   */
  readonly selection?: EvoSelection;
  /** σ_share of sharing: Euclidean distance of unit embeddings, in (0, 2]. */
  readonly sharingRadius?: number;
  /** α of sharing's kernel, > 0. */
  readonly sharingAlpha?: number;
}

/** The rollout round of a generation, as EvoSearch's phase (evolution-machine.ts) carries it. */
interface RolloutPhase {
  readonly kind: 'rollout';
  readonly generation: number;
  readonly items: readonly RolloutItem[];
}

export function validateEvoSearchConfig(config: EvoSearchConfig): void {
  const { steps, evolutionSchedule: E, populationSchedule: K } = config;
  const fail = (field: string, message: string): never => {
    throw new SearchConfigError(field, message);
  };
  if (!Number.isInteger(steps) || steps < 1) fail('steps', `must be a positive integer, got ${steps}`);
  if (K.length !== E.length + 1) {
    fail('populationSchedule', `needs ${E.length + 1} entries (one per generation of evolutionSchedule [${E.join(', ')}], then the final population), got ${K.length}`);
  }
  E.forEach((e, g) => {
    if (!Number.isInteger(e) || e < 0 || e >= steps) fail(`evolutionSchedule[${g}]`, `must be an integer step index in [0, ${steps - 1}], got ${e}`);
    if (g > 0 && e <= E[g - 1]!) fail(`evolutionSchedule[${g}]`, `must be greater than the previous entry ${E[g - 1]} (the schedule is strictly increasing), got ${e}`);
  });
  K.forEach((k, g) => {
    if (!Number.isInteger(k) || k < 1) fail(`populationSchedule[${g}]`, `must be a positive integer, got ${k}`);
  });
  if (!Number.isInteger(config.elites) || config.elites < 0) fail('elites', `must be a non-negative integer, got ${config.elites}`);
  K.slice(1).forEach((k, i) => {
    if (config.elites > k) fail('elites', `${config.elites} elites do not fit the population of ${k} entering generation ${i + 1} (populationSchedule[${i + 1}]); lower elites or raise the population`);
  });
  if (!(config.mutationRate > 0 && config.mutationRate < 1)) fail('mutationRate', `must be in (0, 1), got ${config.mutationRate}`);
  if (!(config.tournamentFraction > 0 && config.tournamentFraction <= 1)) fail('tournamentFraction', `must be in (0, 1], got ${config.tournamentFraction}`);
  if (config.tournamentSize !== undefined && (!Number.isInteger(config.tournamentSize) || config.tournamentSize < 1)) {
    fail('tournamentSize', `must be a positive integer, got ${config.tournamentSize}`);
  }
  if (config.selection !== undefined && !EVO_SELECTIONS.includes(config.selection)) fail('selection', `must be one of ${EVO_SELECTIONS.join(', ')}, got '${String(config.selection)}'`);
  if (config.sharingRadius !== undefined && !(config.sharingRadius > 0 && config.sharingRadius <= 2)) {
    fail('sharingRadius', `must be in (0, 2] (a Euclidean distance between unit embeddings), got ${config.sharingRadius}`);
  }
  if (config.sharingAlpha !== undefined && !(config.sharingAlpha > 0 && Number.isFinite(config.sharingAlpha))) fail('sharingAlpha', `must be a finite number > 0, got ${config.sharingAlpha}`);
  if (config.noiseStd.length < steps) fail('noiseStd', `needs one entry per step (${steps}), got ${config.noiseStd.length}`);
  E.forEach((e, g) => {
    if (e > 0 && !(config.noiseStd[e]! > 0)) {
      fail(`evolutionSchedule[${g}]`, `step ${e} injects no noise (the sampler is deterministic there), so the SDE mutation has no strength; use a stochastic sampler (DDIM eta > 0, DDPM, flow SDE DPM-Solver++)`);
    }
  });
}

/**
 * EvoSearch as a pure state machine (docs/algorithms.md, section 3). A generation's rollout (fitness,
 * archive) shares its round with the previous generation's selection, mutation and advance: G + 1
 * rounds in all (the last advances the final population to x0, where it is scored), then an optional
 * cleanup round. The round driving (in flight, pending, dispatch by phase, the final round) is
 * EvolutionMachine's, shared with AdaptiveEvoSearch.
 */
export class EvoSearch extends EvolutionMachine<RolloutPhase> implements SearchMachine {
  readonly method;
  private readonly noise: NoiseSource;
  /** Individuals at the current generation index waiting for their rollout. */
  private individuals: CandidateId[] = [];
  /** Archived candidates by the generation whose index they sit at. */
  private readonly archived = new Map<number, CandidateId[]>();
  /** Candidates selection chose from, per generation (the archive makes it grow). */
  private readonly pools: number[] = [];
  /** Embeddings of the candidates that may still enter a pool (sharing only), by id. */
  private readonly embeddings = new Map<CandidateId, Float32Array>();
  private readonly selectionRecords: SelectionRecord[] = [];

  constructor(private readonly config: EvoSearchConfig) {
    super('EvoSearch');
    validateEvoSearchConfig(config);
    this.method = config.evolutionSchedule.length === 0 ? 'best-of-n' as const : 'evosearch' as const;
    this.noise = new NoiseSource(config.seed);
  }

  protected override start(): SearchRound {
    const { evolutionSchedule: E, populationSchedule: K, steps } = this.config;
    if (E.length === 0) {
      const { ids, commands } = this.ledger.initialPopulation(K[0]!, steps, true);
      this.phase = { kind: 'final', ids };
      return { kind: 'commands', label: 'best-of-n: sample and score', commands };
    }
    const { ids, commands } = this.ledger.initialPopulation(K[0]!, E[0]!);
    this.individuals = ids;
    return this.rolloutRound(0, commands);
  }

  progress(): SearchProgress {
    return {
      generation: this.generationsDone,
      generations: this.config.evolutionSchedule.length + 1,
      best: this.ledger.best.current,
      lastRoundRewards: this.lastRewards,
    };
  }

  /** What each generation's selection saw and chose. */
  selections(): readonly SelectionRecord[] {
    return this.selectionRecords;
  }

  /** How many candidates each generation's selection saw. */
  poolSizes(): readonly number[] {
    return this.pools;
  }

  private rolloutRound(generation: number, before: SearchCommand[]): SearchRound {
    const E = this.config.evolutionSchedule;
    const e = E[generation]!;
    const later = this.config.archive ? E.slice(generation + 1) : [];
    const items = this.ledger.rolloutItems(this.individuals, e, this.config.steps, generation, later, (offset, _step, id) => this.archivedAt(generation + 1 + offset).push(id));
    this.phase = { kind: 'rollout', generation, items };
    const commands = [...before, ...this.ledger.takeDrops(), { kind: 'rollout' as const, items }];
    return { kind: 'commands', label: `generation ${generation + 1}/${E.length}: roll out ${items.length} at step ${e}`, commands };
  }

  protected override acceptRollout({ generation, items }: RolloutPhase, results: readonly CommandResult[]): void {
    const { rewards, scores } = this.ledger.acceptRollout(items, results);
    if (this.sharing()) {
      // The rollout's sample stands for its source and for every state it archived (they share its reward).
      items.forEach((item, i) => {
        const embedding = requireEmbedding(scores[i]!.embedding, item.source);
        this.embeddings.set(item.source, embedding);
        for (const kept of item.archive) this.embeddings.set(kept.id, embedding);
      });
    }
    this.lastRewards = rewards;
    this.generationsDone = generation + 1;
    this.selectAndAdvance(generation);
  }

  private selectAndAdvance(generation: number): void {
    const { evolutionSchedule: E, populationSchedule: K, steps } = this.config;
    const e = E[generation]!;
    const pool: Scored[] = [...this.individuals, ...(this.archived.get(generation) ?? [])].map((id) => ({ id, reward: this.ledger.lineage.get(id).reward! }));
    this.archived.delete(generation);
    this.pools.push(pool.length);
    const nextSize = K[generation + 1]!;
    const eliteCount = Math.min(this.config.elites, nextSize, pool.length);
    const kept = pickElites(pool, eliteCount).map((c) => c.id);
    const size = tournamentSize(pool.length, this.config.tournamentFraction, this.config.tournamentSize);
    // Elites are chosen on raw reward (above) so sharing never loses the best found; only the parents
    // of the children are chosen on shared fitness.
    const parents = this.sharing()
      ? sharedTournamentWinners(pool.map((c) => ({ ...c, embedding: this.embeddings.get(c.id)! })), nextSize - eliteCount, size, this.noise, generation, { radius: this.config.sharingRadius ?? DEFAULT_SHARING_RADIUS, alpha: this.config.sharingAlpha ?? DEFAULT_SHARING_ALPHA })
      : tournamentWinners(pool, nextSize - eliteCount, size, this.noise, generation);
    this.selectionRecords.push({ generation, ranked: pickElites(pool, pool.length).map((c) => c.id), elites: kept, winners: parents.map((p) => p.id) });
    const mutations = this.ledger.mutations(parents.map((p) => p.id), e, generation + 1, this.config.mutationRate, this.config.noiseStd);
    const population = [...kept, ...mutations.map((m) => m.child)];
    const survivors = new Set(kept);
    const unused = pool.map((c) => c.id).filter((id) => !survivors.has(id));
    for (const id of unused) this.embeddings.delete(id);
    const commands: SearchCommand[] = [...this.ledger.takeDrops()];
    if (mutations.length > 0) commands.push({ kind: 'mutate', step: e, items: mutations });
    if (unused.length > 0) commands.push({ kind: 'drop', ids: unused });
    const last = generation === E.length - 1;
    const to = last ? steps : E[generation + 1]!;
    this.ledger.advanceAll(population, e, to);
    commands.push({ kind: 'advance', ids: population, from: e, to, purpose: 'advance', score: last });
    if (last) {
      this.phase = { kind: 'final', ids: population };
      this.pendingRound = { kind: 'commands', label: `final: ${population.length} to x0`, commands };
    } else {
      this.individuals = population;
      this.pendingRound = this.rolloutRound(generation + 1, commands);
    }
  }

  private sharing(): boolean {
    return this.config.selection === 'sharing';
  }

  private archivedAt(generation: number): CandidateId[] {
    let list = this.archived.get(generation);
    if (list === undefined) this.archived.set(generation, (list = []));
    return list;
  }
}

function requireEmbedding(embedding: Float32Array | undefined, id: CandidateId): Float32Array {
  if (embedding === undefined || embedding.length === 0) {
    throw new Error(`the rollout score of candidate ${id} carries no embedding, but selection 'sharing' needs one per candidate; the workers must be set up with scoreEmbeddings (a worker of protocol 3 sends none)`);
  }
  return embedding;
}
