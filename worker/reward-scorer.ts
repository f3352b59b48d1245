/**
 * What scores decoded samples for a run: every reward model, the guidance reward first, the held-out
 * metrics after it. Local on a worker that serves both roles; on a denoising-only worker, a proxy to
 * the run's reward workers (worker/remote-reward-scorer.ts).
 */
import type { RewardModel } from './models/generator.js';

export interface SampleScore {
  /** The guidance reward. */
  readonly reward: number;
  /** Held-out metrics by name (absent when the run has only the guidance reward). */
  readonly metrics?: Readonly<Record<string, number>>;
}

export interface RewardScorer {
  /** Name of the guidance reward (for errors). */
  readonly guidanceName: string;
  /** Scores `count` samples laid out back to back in `samples`. */
  score(samples: Float32Array, count: number): Promise<SampleScore[]>;
}

export class LocalRewardScorer implements RewardScorer {
  constructor(private readonly rewards: readonly RewardModel[]) {
    if (rewards.length === 0) throw new RangeError('a reward scorer needs at least the guidance reward');
  }

  get guidanceName(): string {
    return this.rewards[0]!.name;
  }

  async score(samples: Float32Array, count: number): Promise<SampleScore[]> {
    const values = this.rewards.map(() => new Float64Array(count));
    for (let r = 0; r < this.rewards.length; r++) await this.rewards[r]!.score(samples, count, values[r]!);
    return Array.from({ length: count }, (_, k) => {
      if (this.rewards.length === 1) return { reward: values[0]![k]! };
      const metrics: Record<string, number> = {};
      this.rewards.forEach((reward, r) => {
        if (r > 0) metrics[reward.name] = values[r]![k]!;
      });
      return { reward: values[0]![k]!, metrics };
    });
  }
}
