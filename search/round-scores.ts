import type { CommandResult, CandidateId } from '../proto/commands.js';

/** Reading a round's scores, as the EvoSearch-style machines (fixed and adaptive) do. */

/** The scores of the one result of `kind` in a round (a round has exactly one scoring command). */
export function scoresOf(results: readonly CommandResult[], kind: CommandResult['kind'], expected: number) {
  const scored = results.filter((r) => r.kind === kind && r.scores.length > 0);
  if (scored.length !== 1) throw new Error(`expected one scored '${kind}' result in the round, got ${scored.length}`);
  const scores = scored[0]!.scores;
  if (scores.length !== expected) throw new Error(`expected ${expected} scores from '${kind}', got ${scores.length}`);
  return scores;
}

export function finiteReward(reward: number, id: CandidateId): number {
  if (!Number.isFinite(reward)) throw new RangeError(`the reward of candidate ${id} is ${reward}; rewards must be finite (a NaN latent or a broken reward model)`);
  return reward;
}
