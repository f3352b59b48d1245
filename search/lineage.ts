import type { CandidateId } from '../proto/commands.js';
import type { NoisePurpose } from '../random/noise-address.js';

/** How a candidate came to be. With its noise addresses this is the recipe that rebuilds its state. */
export type CandidateOrigin =
  /** x_T drawn from ('init', id, 0). */
  | { readonly op: 'init' }
  /** A state kept while `parents[0]` was rolled out from `from` (noise ('rollout', rollout, s)). */
  | { readonly op: 'archive'; readonly from: number; readonly rollout: CandidateId }
  | { readonly op: 'mutate-xT'; readonly beta: number }
  | { readonly op: 'mutate-sde'; readonly sigma: number }
  /** A duplicate of the parent (particle resampling, elites kept by copy). */
  | { readonly op: 'copy' }
  /** The x0 a rollout ended in (kept only while it is the best); its id addresses the rollout's noise. */
  | { readonly op: 'rollout-final'; readonly from: number };

/**
 * A run of addressed noise: the draws (purpose, lineage, s) for every step s in [from, to). Together
 * with the parent's state and the origin's operation, a candidate's ranges are its recipe.
 */
export interface NoiseRange {
  readonly purpose: NoisePurpose;
  readonly lineage: CandidateId;
  readonly from: number;
  readonly to: number;
}

export interface CandidateRecord {
  readonly id: CandidateId;
  readonly parents: readonly CandidateId[];
  readonly origin: CandidateOrigin;
  /** Step index at which the candidate was created. */
  readonly createdAt: number;
  /** Generation (or resampling round) in which it was created. */
  readonly generation: number;
  /**
   * The noise that made this state from its parent's, in order: the origin's draws (x_T, a mutation's
   * epsilon, the rollout that passed an archived state) then every advance since.
   */
  readonly noise: NoiseRange[];
  /** Step index the candidate's state is at now. */
  step: number;
  /** Fitness: the guidance reward of its latest evaluation (what selection used last). */
  reward?: number;
  /** Held-out metrics of the same evaluation. */
  metrics?: Readonly<Record<string, number>>;
  /** Where the latest fitness came from. */
  scoredBy?: EvaluationKind;
  /**
   * Every evaluation of this candidate, oldest first. A candidate that keeps its id while it advances
   * (an elite, a particle) is evaluated once per generation it lives through.
   */
  readonly evaluations: Evaluation[];
}

export type EvaluationKind = 'rollout' | 'x0-prediction' | 'final' | 'archive';

export interface Evaluation {
  /** Step index the candidate was at when evaluated. */
  readonly step: number;
  readonly reward: number;
  readonly metrics?: Readonly<Record<string, number>>;
  readonly by: EvaluationKind;
}

/**
 * Allocates candidate ids (dense, deterministic) and keeps every candidate's record.
 * Ids are the noise lineage, so the same plan gives the same ids, hence the same draws.
 */
export class Lineage {
  private readonly records: CandidateRecord[] = [];

  create(parents: readonly CandidateId[], origin: CandidateOrigin, step: number, generation: number): CandidateRecord {
    const id = this.records.length;
    const record: CandidateRecord = { id, parents, origin, createdAt: step, generation, noise: originNoise(id, origin, step), step, evaluations: [] };
    this.records.push(record);
    return record;
  }

  get(id: CandidateId): CandidateRecord {
    const record = this.records[id];
    if (record === undefined) throw new RangeError(`unknown candidate id ${id} (the lineage holds ${this.records.length})`);
    return record;
  }

  advanced(id: CandidateId, from: number, to: number, purpose: NoisePurpose): void {
    const record = this.get(id);
    if (record.step !== from) throw new Error(`candidate ${id} is at step ${record.step}, cannot advance from ${from}`);
    record.noise.push({ purpose, lineage: id, from, to });
    record.step = to;
  }

  /** Records an evaluation at the candidate's current step; it becomes the candidate's fitness. */
  scored(id: CandidateId, reward: number, metrics: Readonly<Record<string, number>> | undefined, by: EvaluationKind): void {
    const record = this.get(id);
    record.reward = reward;
    record.scoredBy = by;
    if (metrics !== undefined) record.metrics = metrics;
    else delete record.metrics;
    record.evaluations.push(metrics === undefined ? { step: record.step, reward, by } : { step: record.step, reward, metrics, by });
  }

  all(): readonly CandidateRecord[] {
    return this.records;
  }
}

/** The draws a candidate's origin consumed (see the addresses in proto/commands.ts). */
function originNoise(id: CandidateId, origin: CandidateOrigin, step: number): NoiseRange[] {
  switch (origin.op) {
    case 'init':
      return [{ purpose: 'init', lineage: id, from: 0, to: 1 }];
    case 'mutate-xT':
    case 'mutate-sde':
      return [{ purpose: 'mutate', lineage: id, from: step, to: step + 1 }];
    case 'archive':
      return [{ purpose: 'rollout', lineage: origin.rollout, from: origin.from, to: step }];
    case 'rollout-final':
      return [{ purpose: 'rollout', lineage: id, from: origin.from, to: step }];
    case 'copy':
      return [];
  }
}
