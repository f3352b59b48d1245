/**
 * The contract every sampler in this folder implements. Samplers are pure math on flat Float32Arrays:
 * no model, no randomness of their own (the caller supplies every standard normal it needs), so the
 * coordinator (which needs noise levels for mutation) and the workers (which step latents) share them.
 *
 * Step indices: a sampler with N steps visits indices 0..N. Index 0 is x_T (pure noise), index N is x0.
 * `step(i, ...)` takes the sample at index i to index i+1.
 */

/** Where step i sits on the noise scale: x_i = signalScale * x0 + noiseScale * eps. */
export interface StepTime {
  /** The value fed to the network as its timestep input (diffusers' `t`). */
  readonly timestep: number;
  /** a in x = a*x0 + b*eps: sqrt(alpha_bar) for VP schedules, 1 - sigma for flow matching. */
  readonly signalScale: number;
  /** b in x = a*x0 + b*eps: sqrt(1 - alpha_bar) for VP schedules, sigma for flow matching. */
  readonly noiseScale: number;
}

/** What the network predicts. `flow` is the rectified-flow velocity (eps - x0). */
export type PredictionType = 'epsilon' | 'v_prediction' | 'flow';

/**
 * Per-trajectory solver memory. Multistep solvers (second-order DPM-Solver++) need the previous model
 * output; it belongs to the trajectory, so it travels with the state when it is copied or mutated.
 * Single-step samplers keep it null.
 */
export interface SolverMemory {
  /** The converted model output (x0 prediction) of the previous step, or null before the first step. */
  previousX0: Float32Array | null;
}

export interface Sampler {
  /** Number of steps N. */
  readonly steps: number;
  readonly prediction: PredictionType;
  /** Timesteps as diffusers lists them, one per step index 0..N-1. */
  readonly timesteps: readonly number[];
  /** Where step index i (0..N) sits; index N is the clean sample (signalScale 1 for flow, alpha of the final step for VP). */
  time(index: number): StepTime;
  /** Whether step i draws noise (so the caller must pass `noise`). */
  isStochastic(index: number): boolean;
  /** Standard deviation of the noise step i injects into x_{i+1}; 0 for a deterministic step. */
  noiseStd(index: number): number;
  /**
   * x_{i+1} from x_i and the model output at step i, written to `out` (which may alias `sample`).
   * `noise` is a standard normal of the sample's length, required when isStochastic(i).
   */
  step(index: number, sample: Float32Array, modelOutput: Float32Array, noise: Float32Array | null, out: Float32Array, memory: SolverMemory): void;
  /** The one-step prediction of x0 from x_i and the model output at step i (particle sampling scores it). */
  predictX0(index: number, sample: Float32Array, modelOutput: Float32Array, out: Float32Array): void;
}
