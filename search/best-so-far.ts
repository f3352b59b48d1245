import type { CandidateId } from '../proto/commands.js';
import type { BestCandidate } from './machine.js';

/**
 * The best sample over everything evaluated in a run. Only its x0 is worth keeping on the workers
 * (keeping every decoded sample is the unbounded-memory defect of the released code), so every offer
 * says which sample can be dropped.
 */
export class BestSoFar {
  private best: BestCandidate | null = null;

  get current(): BestCandidate | null {
    return this.best;
  }

  /**
   * Offers a scored sample. Returns the sample id that is no longer needed: the previous best's when
   * this one beats it, else this one's (ties keep the earlier sample), or null for the first offer.
   */
  offer(candidate: BestCandidate): CandidateId | null {
    if (this.best === null) {
      this.best = candidate;
      return null;
    }
    if (candidate.reward > this.best.reward) {
      const replaced = this.best.sampleId;
      this.best = candidate;
      return replaced;
    }
    return candidate.sampleId;
  }
}
