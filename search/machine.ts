import type { SearchCommand, CommandResult, CandidateId } from '../proto/commands.js';
import type { CandidateRecord } from './lineage.js';

/**
 * A search algorithm as a pure state machine. It asks for work in rounds: `next()` returns a batch of
 * commands that may run concurrently (in any order, on any workers); the engine executes them and
 * hands the results back, in the same order, through `accept()`. No tensors, sockets or clocks: the
 * same machine runs in the embedded process, in the cluster and in the tests.
 */
export interface SearchMachine {
  readonly method: SearchMethodName;
  /**
   * The next round of commands, or done. Call `accept` with the results before calling `next` again.
   * Commands of a round run in the order given for the states they share (the dispatcher keeps each
   * worker's commands in order, and a new state is placed with its parent), so a round may chain
   * dependent commands such as init then advance, or mutate then advance.
   */
  next(): SearchRound;
  accept(results: readonly CommandResult[]): void;
  /** Where the search stands, for progress bars and events. */
  progress(): SearchProgress;
  /** Every candidate the search created, with lineage and (when evaluated) reward. */
  candidates(): readonly CandidateRecord[];
}

/** The search methods: the one list the config schema, the run plan and the CLI take theirs from. */
export const METHOD_NAMES = ['evosearch', 'best-of-n', 'particles', 'evosearch-adaptive'] as const;
export type SearchMethodName = (typeof METHOD_NAMES)[number];

export type SearchRound =
  | { readonly kind: 'commands'; readonly label: string; readonly commands: readonly SearchCommand[] }
  | {
      readonly kind: 'done';
      readonly best: BestCandidate | null;
      /** The states holding the run's final samples (the final population), best first where known. */
      readonly finalSamples: readonly CandidateId[];
    };

export interface BestCandidate {
  /** The candidate whose rollout (or final sample) gave the best reward. */
  readonly candidate: CandidateId;
  /** The id under which the worker keeps its x0 (fetch it for the output). */
  readonly sampleId: CandidateId;
  readonly reward: number;
}

export interface SearchProgress {
  /** Generations (EvoSearch), resampling rounds (particles) or 1 (Best-of-N) completed so far. Adaptive EvoSearch plans its count as it goes, so `generations` may change. */
  readonly generation: number;
  readonly generations: number;
  readonly best: BestCandidate | null;
  /** Reward of every candidate scored in the latest round (for per-generation population statistics). */
  readonly lastRoundRewards: readonly number[];
}
