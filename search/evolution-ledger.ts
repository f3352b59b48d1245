import type { CandidateId, CommandResult, MutationItem, RolloutItem, ScoredId, SearchCommand } from '../proto/commands.js';
import { BestSoFar } from './best-so-far.js';
import { Lineage } from './lineage.js';

/**
 * The bookkeeping EvoSearch's machines share, fixed schedule or adaptive: the lineage (ids are
 * allocated here, densely and in a fixed order, so an id is also the noise lineage of its state), the
 * best sample so far, and the states to free with the next round. What differs between the machines
 * (where generations happen, how large each population is, how parents are chosen) stays with them.
 */
export class EvolutionLedger {
  readonly lineage = new Lineage();
  readonly best = new BestSoFar();
  private pendingDrops: CandidateId[] = [];

  /**
   * The first population: `count` fresh x_T states, advanced to step `to` (none when `to` is 0; with
   * `score`, scored there, as Best-of-N's final samples are). Returns their ids and the commands.
   */
  initialPopulation(count: number, to: number, score = false): { ids: CandidateId[]; commands: SearchCommand[] } {
    const ids = Array.from({ length: count }, () => this.lineage.create([], { op: 'init' }, 0, 0).id);
    const commands: SearchCommand[] = [{ kind: 'init', ids }];
    if (to > 0) {
      this.advanceAll(ids, 0, to);
      commands.push({ kind: 'advance', ids, from: 0, to, purpose: 'advance', ...(score ? { score: true } : {}) });
    }
    return { ids, commands };
  }

  /**
   * One rollout item per source at `from`: a copy goes to x0 (scored, kept under its final id), keeping
   * archive copies at the `later` step indices. `keep(offset, step, id)` files each archived copy where
   * the machine will look for it (offset: its position in `later`).
   */
  rolloutItems(sources: readonly CandidateId[], from: number, steps: number, generation: number, later: readonly number[], keep: (offset: number, step: number, id: CandidateId) => void): RolloutItem[] {
    return sources.map((source) => {
      const final = this.lineage.create([source], { op: 'rollout-final', from }, steps, generation);
      const archive = later.map((step, offset) => {
        const kept = this.lineage.create([source], { op: 'archive', from, rollout: final.id }, step, generation);
        keep(offset, step, kept.id);
        return { step, id: kept.id };
      });
      return { source, from, archive, finalId: final.id };
    });
  }

  /**
   * Records a rollout round's rewards: the source, every archived copy and the final sample get the
   * rollout's reward; the final sample is offered as the best so far. Returns the rewards and the scores
   * in item order.
   */
  acceptRollout(items: readonly RolloutItem[], results: readonly CommandResult[]): { rewards: number[]; scores: readonly ScoredId[] } {
    const scores = scoresOf(results, 'rollout', items.length);
    const rewards = items.map((item, i) => {
      const score = scores[i]!;
      if (score.id !== item.source) throw new Error(`rollout result ${i} is for candidate ${score.id}, expected ${item.source}`);
      const reward = finiteReward(score.reward, item.source);
      this.lineage.scored(item.source, reward, score.metrics, 'rollout');
      for (const kept of item.archive) this.lineage.scored(kept.id, reward, score.metrics, 'archive');
      this.lineage.scored(item.finalId, reward, score.metrics, 'rollout');
      const dropped = this.best.offer({ candidate: item.source, sampleId: item.finalId, reward });
      if (dropped !== null) this.pendingDrops.push(dropped);
      return reward;
    });
    return { rewards, scores };
  }

  /**
   * Records the final population's rewards. The final population stays on the workers (the run's final
   * samples); only a rollout sample that a final sample beats is freed. Returns the rewards in id order.
   */
  acceptFinal(ids: readonly CandidateId[], results: readonly CommandResult[]): number[] {
    const scores = scoresOf(results, 'advance', ids.length);
    return ids.map((id, i) => {
      const score = scores[i]!;
      if (score.id !== id) throw new Error(`final result ${i} is for candidate ${score.id}, expected ${id}`);
      const reward = finiteReward(score.reward, id);
      this.lineage.scored(id, reward, score.metrics, 'final');
      const dropped = this.best.offer({ candidate: id, sampleId: id, reward });
      if (dropped !== null && this.lineage.get(dropped).origin.op === 'rollout-final') this.pendingDrops.push(dropped);
      return reward;
    });
  }

  /**
   * One child per parent at step index `step`: the x_T mutation (sqrt(1−β²)·x + β·ε) at step 0, else the
   * SDE mutation with the sampler's own noise level there (docs/algorithms.md, section 3).
   */
  mutations(parents: readonly CandidateId[], step: number, generation: number, mutationRate: number, noiseStd: readonly number[]): MutationItem[] {
    return parents.map((parent) => {
      if (step === 0) {
        const child = this.lineage.create([parent], { op: 'mutate-xT', beta: mutationRate }, step, generation);
        return { parent, child: child.id, op: 'xT' as const, beta: mutationRate };
      }
      const sigma = noiseStd[step]!;
      const child = this.lineage.create([parent], { op: 'mutate-sde', sigma }, step, generation);
      return { parent, child: child.id, op: 'sde' as const, sigma };
    });
  }

  advanceAll(ids: readonly CandidateId[], from: number, to: number): void {
    for (const id of ids) this.lineage.advanced(id, from, to, 'advance');
  }

  /** A drop command for the states waiting to be freed (none when nothing waits). */
  takeDrops(): SearchCommand[] {
    if (this.pendingDrops.length === 0) return [];
    const ids = this.pendingDrops;
    this.pendingDrops = [];
    return [{ kind: 'drop', ids }];
  }
}

/** The scores of the one result of `kind` in a round (a round has exactly one scoring command). */
function scoresOf(results: readonly CommandResult[], kind: CommandResult['kind'], expected: number) {
  const scored = results.filter((r) => r.kind === kind && r.scores.length > 0);
  if (scored.length !== 1) throw new Error(`expected one scored '${kind}' result in the round, got ${scored.length}`);
  const scores = scored[0]!.scores;
  if (scores.length !== expected) throw new Error(`expected ${expected} scores from '${kind}', got ${scores.length}`);
  return scores;
}

function finiteReward(reward: number, id: CandidateId): number {
  if (!Number.isFinite(reward)) throw new RangeError(`the reward of candidate ${id} is ${reward}; rewards must be finite (a NaN latent or a broken reward model)`);
  return reward;
}
