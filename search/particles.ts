import type { CandidateId, SearchCommand, CommandResult, RolloutItem, ScoredId } from '../proto/commands.js';
import { NoiseSource } from '../random/noise-source.js';
import { describeValue } from '../errors/describe-value.js';
import { BestSoFar } from './best-so-far.js';
import { Lineage, type CandidateRecord } from './lineage.js';
import type { BestCandidate, SearchMachine, SearchProgress, SearchRound } from './machine.js';
import type { PlannedSpend } from './planner.js';
import { applyPotential, EMPTY_HISTORY, POTENTIAL_NAMES, type PotentialHistory, type PotentialName } from './potentials.js';
import { effectiveSampleSize, multinomialAncestors, normalizedWeights } from './resampling.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/**
 * Particle sampling (FK steering, Singhal et al., arXiv 2501.06848; docs/algorithms.md, section 5):
 * k particles advance together; at each resampling index they are scored, weighed by
 * exp(lambda * potential) and resampled multinomially; the best final particle is the answer.
 */
export interface ParticleSearchConfig {
  /** k: number of particles. */
  readonly particles: number;
  /** N: sampler steps (indices 0..N). */
  readonly steps: number;
  /** Weight sharpness lambda (default 10); 0 resamples uniformly, whatever the rewards. */
  readonly lambda?: number;
  /** How the score history becomes r~ (default 'max'). */
  readonly potential?: PotentialName;
  /** Resampling indices: see `resamplingSchedule`. Defaults: start 0, end N, interval 20. */
  readonly resampling?: { readonly start?: number; readonly end?: number; readonly interval?: number };
  /** Resample only when ESS < k/2 (default false: resample at every resampling index). */
  readonly adaptive?: boolean;
  /** Score by the one-step x0 prediction (default) or by a full rollout from the index. */
  readonly fitness?: 'x0-prediction' | 'rollout';
  readonly seed: number | bigint;
}

/** The config with its defaults filled in and its schedule worked out. */
export interface ResolvedParticleConfig {
  readonly particles: number;
  readonly steps: number;
  readonly lambda: number;
  readonly potential: PotentialName;
  readonly resampling: { readonly start: number; readonly end: number; readonly interval: number };
  readonly adaptive: boolean;
  readonly fitness: 'x0-prediction' | 'rollout';
  readonly seed: number | bigint;
  /** The indices where particles are scored, ascending; the last is always N (see `resamplingSchedule`). */
  readonly schedule: readonly number[];
}

/** A particle config that cannot run. `field` names the culprit (dotted for nested fields). */
export class ParticleConfigError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'ParticleConfigError';
  constructor(
    readonly field: string,
    /** What is wrong with it, as the rest of a sentence that starts with the field's name. */
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`particle search config: ${field} ${problem}`, options);
  }
}

const DEFAULT_INTERVAL = 20;
const CONFIG_KEYS = new Set(['particles', 'steps', 'lambda', 'potential', 'resampling', 'adaptive', 'fitness', 'seed']);
const RESAMPLING_KEYS = new Set(['start', 'end', 'interval']);

/**
 * The scheduled indices: every i with start <= i <= end, (i - start) % interval == 0 and 0 < i < N,
 * then N. Index 0 is left out (x_T has no x0 prediction worth scoring) and N always closes the
 * schedule: at N the particles are the final samples, scored for the answer instead of resampled.
 */
export function resamplingSchedule(steps: number, resampling: { start: number; end: number; interval: number }): number[] {
  const schedule: number[] = [];
  for (let i = resampling.start; i <= resampling.end && i < steps; i += resampling.interval) {
    if (i > 0) schedule.push(i);
  }
  schedule.push(steps);
  return schedule;
}

/** Validates `config` and fills in the defaults; throws ParticleConfigError naming the first bad field. */
export function resolveParticleConfig(config: ParticleSearchConfig): ResolvedParticleConfig {
  const fail = (field: string, problem: string, cause?: unknown): never => {
    throw new ParticleConfigError(field, problem, cause === undefined ? undefined : { cause });
  };
  if (typeof config !== 'object' || config === null) fail('(config)', `must be an object, got ${describeValue(config)}`);
  // An unknown key is most likely a misspelt option that would otherwise be silently defaulted.
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key)) fail(key, `is not a particle search option (known: ${[...CONFIG_KEYS].join(', ')})`);
  }
  const { particles, steps } = config;
  if (!isInt(particles) || particles < 1) fail('particles', `must be a positive integer, got ${describeValue(particles)}`);
  if (!isInt(steps) || steps < 1) fail('steps', `must be a positive integer, got ${describeValue(steps)}`);

  const lambda = config.lambda ?? 10;
  if (typeof lambda !== 'number' || !Number.isFinite(lambda) || lambda < 0) fail('lambda', `must be a finite number >= 0, got ${describeValue(lambda)}`);
  const potential = config.potential ?? 'max';
  if (!POTENTIAL_NAMES.includes(potential)) fail('potential', `must be one of ${POTENTIAL_NAMES.join(', ')}, got ${describeValue(potential)}`);
  const adaptive = config.adaptive ?? false;
  if (typeof adaptive !== 'boolean') fail('adaptive', `must be a boolean, got ${describeValue(adaptive)}`);
  const fitness = config.fitness ?? 'x0-prediction';
  if (fitness !== 'x0-prediction' && fitness !== 'rollout') fail('fitness', `must be 'x0-prediction' or 'rollout', got ${describeValue(fitness)}`);

  const given = config.resampling ?? {};
  if (typeof given !== 'object' || given === null) fail('resampling', `must be an object { start, end, interval }, got ${describeValue(given)}`);
  for (const key of Object.keys(given)) {
    if (!RESAMPLING_KEYS.has(key)) fail(`resampling.${key}`, `is not a resampling option (known: start, end, interval)`);
  }
  const start = given.start ?? 0;
  const end = given.end ?? steps;
  const interval = given.interval ?? DEFAULT_INTERVAL;
  if (!isInt(start) || start < 0 || start > steps) fail('resampling.start', `must be an integer step index in [0, ${steps}], got ${describeValue(start)}`);
  if (!isInt(end) || end < start || end > steps) fail('resampling.end', `must be an integer step index in [start = ${start}, ${steps}], got ${describeValue(end)}`);
  if (!isInt(interval) || interval < 1) fail('resampling.interval', `must be a positive integer, got ${describeValue(interval)}`);

  try {
    new NoiseSource(config.seed);
  } catch (error) {
    fail('seed', `is not a usable run seed: ${(error as Error).message}`, error);
  }
  const resampling = { start, end, interval };
  return { particles, steps, lambda, potential, resampling, adaptive, fitness, seed: config.seed, schedule: resamplingSchedule(steps, resampling) };
}

/**
 * NFE (also in trajectories of N steps), decodes and reward calls the config will spend. x0-prediction: k * N NFEs, since scoring at
 * index j reuses the model output the next advance from j needs (AdvanceCommand); rollout adds
 * k * (N - i) per scheduled index i < N. Each scheduled index decodes and scores every particle once.
 * ESS-adaptive skipping changes only copies, never compute, so the plan is exact.
 */
export function plannedParticleCompute(config: ParticleSearchConfig): PlannedSpend {
  const { particles: k, steps: N, schedule, fitness } = resolveParticleConfig(config);
  let nfe = k * N;
  if (fitness === 'rollout') for (const i of schedule) nfe += k * (N - i);
  return { nfe, decodes: k * schedule.length, rewardCalls: k * schedule.length, trajectories: nfe / N };
}

/** Validates the config and returns a fresh particle search. */
export function createParticleSearch(config: ParticleSearchConfig): SearchMachine {
  return new ParticleSearch(resolveParticleConfig(config));
}

interface Particle {
  readonly id: CandidateId;
  history: PotentialHistory;
}

/** The round `next()` builds next. */
type Stage =
  | { readonly kind: 'init' }
  /** Advance every particle to schedule[position]. */
  | { readonly kind: 'advance'; readonly position: number }
  | { readonly kind: 'rollout'; readonly position: number }
  | { readonly kind: 'resample'; readonly position: number; readonly copies: readonly { from: CandidateId; to: CandidateId }[]; readonly drops: readonly CandidateId[] }
  /** States to free after the final scoring (a rollout final overtaken by a final particle). */
  | { readonly kind: 'cleanup' }
  | { readonly kind: 'done' };

/** The round handed out and not yet accepted. */
type InFlight =
  | { readonly kind: 'init' | 'cleanup'; readonly commands: readonly SearchCommand[] }
  | { readonly kind: 'resample'; readonly commands: readonly SearchCommand[]; readonly position: number }
  | { readonly kind: 'advance'; readonly commands: readonly SearchCommand[]; readonly position: number; readonly score: boolean }
  | { readonly kind: 'rollout'; readonly commands: readonly SearchCommand[]; readonly position: number; readonly items: readonly RolloutItem[] };

/**
 * Rounds, for schedule s_0 < ... < s_{m-1} = N (every command of a round touches its own ids, so a
 * round's commands are independent, as SearchMachine promises the engine):
 *   init k | advance s_{t-1} -> s_t (scored; rollout mode: unscored, then a rollout round) |
 *   resample at s_t (copy + drop), for t < m - 1 when resampling happens and changes anything |
 *   after the scored advance to N: cleanup (if anything is left to free), then done.
 * Ids come from the plan: the k initial particles are 0..k-1, and later ids are allocated in a fixed
 * order (rollout finals in particle order, copies in ancestor order) when a round is built or accepted,
 * so the same seed and rewards give the same ids, commands and decisions.
 */
class ParticleSearch implements SearchMachine {
  readonly method = 'particles' as const;
  private readonly lineage = new Lineage();
  private readonly noise: NoiseSource;
  private particles: Particle[] = [];
  /** Step index every live particle is at. */
  private index = 0;
  private stage: Stage = { kind: 'init' };
  private inFlight: InFlight | null = null;
  /** Rollout finals that lost the best-so-far, freed with the next round. */
  private pendingDrops: CandidateId[] = [];
  private readonly best = new BestSoFar();
  private roundsDone = 0;
  private lastRewards: number[] = [];

  constructor(private readonly config: ResolvedParticleConfig) {
    this.noise = new NoiseSource(config.seed);
  }

  next(): SearchRound {
    if (this.inFlight !== null) throw new Error(`particle search: next() called before accept() of the ${this.inFlight.kind} round`);
    const { schedule, steps, particles: k } = this.config;
    const stage = this.stage;
    switch (stage.kind) {
      case 'init': {
        const ids = Array.from({ length: k }, () => this.lineage.create([], { op: 'init' }, 0, 0).id);
        this.particles = ids.map((id) => ({ id, history: EMPTY_HISTORY }));
        return this.issue({ kind: 'init', commands: [{ kind: 'init', ids }] }, `init ${k} particles`);
      }
      case 'advance': {
        const to = schedule[stage.position]!;
        const from = this.index;
        // In rollout mode the rollout scores intermediate indices; at N the sample itself is scored.
        const score = this.config.fitness === 'x0-prediction' || to === steps;
        const ids = this.particles.map((p) => p.id);
        for (const id of ids) this.lineage.advanced(id, from, to, 'advance');
        this.index = to;
        const command: SearchCommand = score ? { kind: 'advance', ids, from, to, purpose: 'advance', score: true } : { kind: 'advance', ids, from, to, purpose: 'advance' };
        return this.issue({ kind: 'advance', commands: [command, ...this.takeDrops()], position: stage.position, score }, `advance ${k} particles ${from} -> ${to}${score ? ' and score' : ''}`);
      }
      case 'rollout': {
        const from = this.index;
        const items: RolloutItem[] = this.particles.map(({ id }) => {
          const final = this.lineage.create([id], { op: 'rollout-final', from }, steps, stage.position);
          return { source: id, from, archive: [], finalId: final.id };
        });
        return this.issue({ kind: 'rollout', commands: [{ kind: 'rollout', items }, ...this.takeDrops()], position: stage.position, items }, `roll out ${k} particles from ${from}`);
      }
      case 'resample': {
        const commands: SearchCommand[] = [];
        if (stage.copies.length > 0) commands.push({ kind: 'copy', items: stage.copies });
        const drops = [...stage.drops, ...this.pendingDrops];
        this.pendingDrops = [];
        if (drops.length > 0) commands.push({ kind: 'drop', ids: drops });
        return this.issue({ kind: 'resample', commands, position: stage.position }, `resample at ${this.index}: ${stage.copies.length} copies, ${stage.drops.length} dropped`);
      }
      case 'cleanup': {
        const label = `free ${this.pendingDrops.length} states`;
        return this.issue({ kind: 'cleanup', commands: this.takeDrops() }, label);
      }
      case 'done':
        return { kind: 'done', best: this.best.current, finalSamples: this.particles.map((p) => p.id) };
    }
  }

  accept(results: readonly CommandResult[]): void {
    const round = this.inFlight;
    if (round === null) throw new Error('particle search: accept() called with no round in flight');
    if (results.length !== round.commands.length) {
      throw new Error(`particle search: the ${round.kind} round had ${round.commands.length} commands, got ${results.length} results`);
    }
    round.commands.forEach((command, i) => {
      if (results[i]!.kind !== command.kind) throw new Error(`particle search: result ${i} of the ${round.kind} round is a '${results[i]!.kind}' result, expected '${command.kind}'`);
    });
    this.inFlight = null;
    const { schedule } = this.config;
    switch (round.kind) {
      case 'init':
        this.stage = { kind: 'advance', position: 0 };
        return;
      case 'advance': {
        if (!round.score) {
          this.stage = { kind: 'rollout', position: round.position };
          return;
        }
        const ids = this.particles.map((p) => p.id);
        const scores = checkedScores(results[0]!.scores, ids, ids);
        const final = schedule[round.position] === this.config.steps;
        scores.forEach((s, i) => this.record(ids[i]!, s, final ? 'final' : 'x0-prediction'));
        this.weigh(round.position, scores.map((s) => s.reward));
        return;
      }
      case 'rollout': {
        const items = round.items;
        // Results may name a rollout by its source or by its final id; either way they follow the items.
        const scores = checkedScores(results[0]!.scores, items.map((it) => it.source), items.map((it) => it.finalId));
        scores.forEach((s, i) => {
          const item = items[i]!;
          this.record(item.source, s, 'rollout');
          this.record(item.finalId, s, 'rollout');
          this.offerBest({ candidate: item.source, sampleId: item.finalId, reward: s.reward });
        });
        this.weigh(round.position, scores.map((s) => s.reward));
        return;
      }
      case 'resample':
        // Resampling never happens at N, so another scheduled index follows.
        this.stage = { kind: 'advance', position: round.position + 1 };
        return;
      case 'cleanup':
        this.stage = { kind: 'done' };
        return;
    }
  }

  progress(): SearchProgress {
    return { generation: this.roundsDone, generations: this.config.schedule.length, best: this.best.current, lastRoundRewards: this.lastRewards };
  }

  candidates(): readonly CandidateRecord[] {
    return this.lineage.all();
  }

  private issue(round: InFlight, label: string): SearchRound {
    this.inFlight = round;
    return { kind: 'commands', label, commands: round.commands };
  }

  /**
   * The scored round at schedule[position] is in: update potentials, then resample (t < m - 1) or
   * pick the answer (at N). The uniforms of round t are ('select', t, d) for draw d, so a draw depends
   * on the seed and the round alone, and an ESS-skipped round does not shift later rounds' draws.
   */
  private weigh(position: number, rewards: number[]): void {
    const { particles: k, potential, lambda, adaptive, schedule, steps } = this.config;
    this.lastRewards = rewards;
    this.roundsDone = position + 1;
    if (schedule[position] === steps) {
      // At N the particles are the final samples: the answer is the best of them (and, in rollout
      // mode, of the earlier rollouts). Resampling here would only duplicate finished samples.
      this.particles.forEach((p, i) => this.offerBest({ candidate: p.id, sampleId: p.id, reward: rewards[i]! }));
      this.stage = this.pendingDrops.length > 0 ? { kind: 'cleanup' } : { kind: 'done' };
      return;
    }
    const values = this.particles.map((p, i) => {
      const { value, history } = applyPotential(potential, p.history, rewards[i]!);
      p.history = history;
      return value;
    });
    const weights = normalizedWeights(values, lambda);
    if (adaptive && effectiveSampleSize(weights) >= k / 2) {
      this.stage = { kind: 'advance', position: position + 1 };
      return;
    }
    const uniforms = new Float64Array(k);
    const draw = new Float64Array(1);
    for (let d = 0; d < k; d++) uniforms[d] = this.noise.uniforms({ purpose: 'select', lineage: position, step: d }, draw)[0]!;
    const counts = new Array<number>(k).fill(0);
    for (const a of multinomialAncestors(weights, uniforms)) counts[a]!++;

    // A selected particle keeps its id for its first copy, so only the extra copies are new states
    // (and copy sources are never dropped in the same round); the copies get fresh ids, hence fresh
    // sampler noise from here on, which is what separates them. Each copy inherits the history.
    const at = schedule[position]!;
    const survivors: Particle[] = [];
    const copies: { from: CandidateId; to: CandidateId }[] = [];
    const drops: CandidateId[] = [];
    this.particles.forEach((p, slot) => {
      if (counts[slot] === 0) drops.push(p.id);
      else survivors.push(p);
      for (let c = 1; c < counts[slot]!; c++) {
        const copy = this.lineage.create([p.id], { op: 'copy' }, at, position + 1);
        copies.push({ from: p.id, to: copy.id });
        survivors.push({ id: copy.id, history: p.history });
      }
    });
    this.particles = survivors;
    this.stage = copies.length > 0 || this.pendingDrops.length > 0
      ? { kind: 'resample', position, copies, drops }
      : { kind: 'advance', position: position + 1 };
  }

  /**
   * Keeps the best. A rollout final that is not (or no longer) the best is freed with the next round;
   * a final particle that loses stays: it is one of the k final samples the run reports.
   */
  private offerBest(candidate: BestCandidate): void {
    const unneeded = this.best.offer(candidate);
    if (unneeded !== null && this.lineage.get(unneeded).origin.op === 'rollout-final') this.pendingDrops.push(unneeded);
  }

  private record(id: CandidateId, score: ScoredId, by: NonNullable<CandidateRecord['scoredBy']>): void {
    this.lineage.scored(id, score.reward, score.metrics, by);
  }

  private takeDrops(): SearchCommand[] {
    if (this.pendingDrops.length === 0) return [];
    const ids = this.pendingDrops;
    this.pendingDrops = [];
    return [{ kind: 'drop', ids }];
  }
}

/** Scores in command order, each for the expected id (or its alternative), with a finite reward. */
function checkedScores(scores: readonly ScoredId[], ids: readonly CandidateId[], alternatives: readonly CandidateId[]): readonly ScoredId[] {
  if (scores.length !== ids.length) throw new Error(`particle search: expected ${ids.length} scores, got ${scores.length}`);
  scores.forEach((s, i) => {
    if (s.id !== ids[i] && s.id !== alternatives[i]) throw new Error(`particle search: score ${i} is for candidate ${s.id}, expected ${ids[i]}`);
    if (!Number.isFinite(s.reward)) throw new RangeError(`particle search: the reward of candidate ${s.id} is ${s.reward}; rewards must be finite (a NaN latent or a broken reward model)`);
  });
  return scores;
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

