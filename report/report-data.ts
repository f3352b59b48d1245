/**
 * The plain data a finished search hands to the report writers: everything
 * the user sees after a run (best sample, final population, reward curve,
 * lineage of the winner, compute spent). No behaviour, no classes: the
 * coordinator fills it in, `html-report.ts` and `write-outputs.ts` render it.
 *
 * Samples are Float32Array in [0, 1], channels first:
 *   image [3, H, W] or [1, H, W]; video [F, 3, H, W] or [F, 1, H, W].
 */
import type { ComputeCounters } from '../proto/commands.js';

/** A decoded sample: values in [0, 1], channels first (see module doc). */
export interface SampleData {
  data: Float32Array;
  shape: number[];
}

/** Where a lineage step came from. */
export type LineageOp = 'init' | 'mutate-xT' | 'mutate-sde' | 'archive' | 'copy' | 'rollout';

export interface LineageStep {
  id: string | number;
  op: LineageOp;
  /** Generation (search round) in which this state was produced. */
  generation: number;
  /** Denoising step index of this state (e.g. T for x_T, 0 for the final sample). */
  step: number;
  reward: number | null;
  thumbnail: SampleData | null;
}

export interface RoundReport {
  label: string;
  generation: number;
  /** Best reward seen so far (monotone for elitist searches). */
  bestReward: number | null;
  populationMean: number | null;
  populationMax: number | null;
}

export interface PopulationMember {
  id: string | number;
  reward: number;
  sample: SampleData;
}

export interface PromptReport {
  prompt: string | null;
  method: string;
  model: string;
  /** Budget in NFEs the run was given. */
  budgetNfe: number;
  spent: ComputeCounters;
  wallMs: number;
  bytesMoved: number;
  best: {
    /** Guidance (search) reward of the best sample. */
    reward: number;
    /** Held-out metrics, by name. */
    metrics: Record<string, number>;
    sample: SampleData | null;
  };
  /** One entry per round, in order. */
  rounds: RoundReport[];
  /** Final population; the writers sort it best first. */
  population: PopulationMember[];
  /** The winner's ancestry, ordered from x_T (first) to the final sample (last). */
  lineage: LineageStep[];
  /**
   * Every sample the run scored in full, with its held-out metrics (`scoredSamples` in
   * held-out-check.ts makes it from the run's candidates): what the report checks the winner's
   * held-out metrics against. Absent: no check is shown.
   */
  scored?: ScoredSample[];
}

/** One sample scored in full: its guidance reward and held-out metrics. */
export interface ScoredSample {
  readonly reward: number;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface RunReportData {
  title: string;
  prompts: PromptReport[];
}
