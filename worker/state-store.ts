import type { CandidateId } from '../proto/commands.js';
import type { SolverMemory } from '../samplers/sampler.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** One trajectory's state as a worker holds it between commands. */
export interface TrajectoryState {
  /** The latent x_step. */
  latent: Float32Array;
  /** Step index (0..N) the latent is at. */
  step: number;
  /** Multistep solver memory of this trajectory. */
  memory: SolverMemory;
  /**
   * The model output at `step`, when a one-step x0 score already paid for it; the next advance from
   * `step` reuses it instead of calling the model again.
   */
  cachedOutput: Float32Array | null;
}

/** A command names a state this worker does not hold: the coordinator and the worker disagree. */
export class UnknownStateError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'UnknownStateError';
  constructor(readonly id: CandidateId, readonly operation: string) {
    super(`${operation}: this worker holds no state for candidate ${id} (never made here, dropped, or placed on another worker)`);
  }
}

/** The states resident on one worker, by candidate id. */
export class StateStore {
  private readonly states = new Map<CandidateId, TrajectoryState>();

  get(id: CandidateId, operation: string): TrajectoryState {
    const state = this.states.get(id);
    if (state === undefined) throw new UnknownStateError(id, operation);
    return state;
  }

  put(id: CandidateId, state: TrajectoryState): void {
    this.states.set(id, state);
  }

  has(id: CandidateId): boolean {
    return this.states.has(id);
  }

  drop(id: CandidateId): void {
    this.states.delete(id);
  }

  /** A deep copy, so the copy and the original can advance independently. */
  static clone(state: TrajectoryState): TrajectoryState {
    return {
      latent: state.latent.slice(),
      step: state.step,
      memory: { previousX0: state.memory.previousX0?.slice() ?? null },
      cachedOutput: state.cachedOutput?.slice() ?? null,
    };
  }

  get size(): number {
    return this.states.size;
  }

  entries(): IterableIterator<[CandidateId, TrajectoryState]> {
    return this.states.entries();
  }
}
