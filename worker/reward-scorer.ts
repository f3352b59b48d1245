/**
 * What scores decoded samples for a run: every reward model, the guidance reward first, the held-out
 * metrics after it. Local on a worker that serves both roles; on a denoising-only worker, a proxy to
 * the run's reward workers (worker/remote-reward-scorer.ts).
 */
import type { RewardModel } from './models/generator.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** A run asked for embeddings with its scores, and the guidance reward cannot give them. */
export class MissingEmbeddingError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'MissingEmbeddingError';
}

export interface SampleScore {
  /** The guidance reward. */
  readonly reward: number;
  /** Held-out metrics by name (absent when the run has only the guidance reward). */
  readonly metrics?: Readonly<Record<string, number>>;
  /** The guidance reward's embedding of the sample, when the scorer was asked for embeddings. */
  readonly embedding?: Float32Array;
}

export interface RewardScorer {
  /** Name of the guidance reward (for errors). */
  readonly guidanceName: string;
  /** Scores `count` samples laid out back to back in `samples`. */
  score(samples: Float32Array, count: number): Promise<SampleScore[]>;
}

export class LocalRewardScorer implements RewardScorer {
  /**
   * With `embeddings`, every score also carries the guidance reward's embedding of its sample (one more
   * pass of the reward graph's image tower per batch, so only runs that use it ask for it).
   */
  constructor(private readonly rewards: readonly RewardModel[], private readonly embeddings = false) {
    if (rewards.length === 0) throw new RangeError('a reward scorer needs at least the guidance reward');
    const guidance = rewards[0]!;
    if (embeddings && (guidance.embed === undefined || guidance.embeddingSize === undefined)) {
      throw new MissingEmbeddingError(`the run asks for embeddings with its scores (fitness sharing), but the guidance reward '${guidance.name}' has no embedding output (rewards.json "embedding")`);
    }
  }

  get guidanceName(): string {
    return this.rewards[0]!.name;
  }

  async score(samples: Float32Array, count: number): Promise<SampleScore[]> {
    const values = this.rewards.map(() => new Float64Array(count));
    for (let r = 0; r < this.rewards.length; r++) await this.rewards[r]!.score(samples, count, values[r]!);
    const guidance = this.rewards[0]!;
    const rows = this.embeddings ? await guidance.embed!(samples, count) : null;
    const size = guidance.embeddingSize ?? 0;
    return Array.from({ length: count }, (_, k) => {
      // A copy per sample: the score outlives the batch (journal, structured clone).
      const embedding = rows === null ? null : rows.slice(k * size, (k + 1) * size);
      const withEmbedding = <T extends SampleScore>(score: T): SampleScore => (embedding === null ? score : { ...score, embedding });
      if (this.rewards.length === 1) return withEmbedding({ reward: values[0]![k]! });
      const metrics: Record<string, number> = {};
      this.rewards.forEach((reward, r) => {
        if (r > 0) metrics[reward.name] = values[r]![k]!;
      });
      return withEmbedding({ reward: values[0]![k]!, metrics });
    });
  }
}
