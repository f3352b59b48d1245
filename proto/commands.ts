/**
 * The command vocabulary between the coordinator and the workers: what the search asks for and what
 * comes back. Commands name states by candidate id and carry no tensors; a worker keeps the states it
 * made. Over gRPC they travel as the messages of worker.proto (proto/command-messages.ts maps them).
 *
 * Every random draw a command implies has an address (see random/noise-address.ts):
 * - init: ('init', id, 0)
 * - advance: (purpose, id, step) for each step from..to-1, purpose 'advance' or 'rollout' as the command says
 * - rollout: ('rollout', finalId, step): every rollout has its own final id, so two rollouts of the
 *   same candidate from different steps never share noise
 * - mutate: ('mutate', child, step)
 */

export type CandidateId = number;

/** Draw x_T ~ N(0, I) for each id. */
export interface InitCommand {
  readonly kind: 'init';
  readonly ids: readonly CandidateId[];
}

/**
 * Advance states in place from step index `from` to `to` with the stochastic sampler.
 * With `score`, the result carries a reward per id: of the sample itself when to = N (decoded), else of
 * the one-step x0 prediction at `to` (the model output computed for it is kept with the state and
 * reused by the next advance from `to`, so scoring costs no extra NFE).
 */
export interface AdvanceCommand {
  readonly kind: 'advance';
  readonly ids: readonly CandidateId[];
  readonly from: number;
  readonly to: number;
  readonly purpose: 'advance' | 'rollout';
  readonly score?: boolean;
  /** With score: also return each scored sample as a thumbnail of at most this many pixels a side. */
  readonly thumbnails?: number;
}

/**
 * One rollout: a copy of `source` (left untouched) goes from `from` to x0, is decoded and scored.
 * Its sampler noise is addressed by `finalId`.
 */
export interface RolloutItem {
  readonly source: CandidateId;
  readonly from: number;
  /** States the rollout passes that are kept as new candidates (the trajectory archive). */
  readonly archive: readonly { readonly step: number; readonly id: CandidateId }[];
  /** The id under which the decoded-ready x0 is kept (the coordinator drops it unless it is the best). */
  readonly finalId: CandidateId;
}

export interface RolloutCommand {
  readonly kind: 'rollout';
  readonly items: readonly RolloutItem[];
  /** Also return each rollout's sample as a thumbnail of at most this many pixels a side (outputs). */
  readonly thumbnails?: number;
}

export type MutationItem =
  /** child = sqrt(1 - beta^2) * parent + beta * eps: keeps x_T ~ N(0, I). */
  | { readonly parent: CandidateId; readonly child: CandidateId; readonly op: 'xT'; readonly beta: number }
  /** child = parent + sigma * eps, sigma the sampler's noise std at that step. */
  | { readonly parent: CandidateId; readonly child: CandidateId; readonly op: 'sde'; readonly sigma: number };

export interface MutateCommand {
  readonly kind: 'mutate';
  /** The step index the parents are at (part of the noise address). */
  readonly step: number;
  readonly items: readonly MutationItem[];
}

/** Duplicate states (particle resampling); the copy keeps the solver memory and cached model output. */
export interface CopyCommand {
  readonly kind: 'copy';
  readonly items: readonly { readonly from: CandidateId; readonly to: CandidateId }[];
}

export interface DropCommand {
  readonly kind: 'drop';
  readonly ids: readonly CandidateId[];
}

/** Return the decoded samples of these states (outputs: the best sample). */
export interface FetchCommand {
  readonly kind: 'fetch';
  readonly ids: readonly CandidateId[];
}

/**
 * A state's full content, for moving it between workers (placement, never the search's concern):
 * the latent, its step, the solver memory and any cached model output.
 */
export interface TransferredState {
  readonly id: CandidateId;
  readonly step: number;
  readonly latent: Float32Array;
  readonly previousX0: Float32Array | null;
  readonly cachedOutput: Float32Array | null;
}

/** Placement: hand over copies of these states (the worker keeps its own). */
export interface ExportCommand {
  readonly kind: 'export';
  readonly ids: readonly CandidateId[];
}

/** Placement: take these states, each under `as` (its own id when absent). */
export interface ImportCommand {
  readonly kind: 'import';
  readonly states: readonly { readonly as: CandidateId; readonly state: TransferredState }[];
}

/**
 * Recovery: rebuild states a lost worker held, each from its recipe (the single-id commands that made
 * it, from init on; randomness is addressed, so they give the same state), then run the lost worker's
 * share of the round on them. All of it runs apart from this worker's own states, and what is left at
 * the end joins them.
 */
export interface RecoverCommand {
  readonly kind: 'recover';
  readonly rebuild: readonly { readonly id: CandidateId; readonly recipe: readonly Command[] }[];
  readonly piece: readonly Command[];
}

/**
 * Reward workers: score decoded samples a denoising worker sends (`count` samples back to back). The
 * result's scores carry ids 0..count-1, in order.
 */
export interface ScoreCommand {
  readonly kind: 'score';
  readonly samples: Float32Array;
  readonly count: number;
}

/** What the search issues. */
export type SearchCommand = InitCommand | AdvanceCommand | RolloutCommand | MutateCommand | CopyCommand | DropCommand | FetchCommand;

/**
 * Checkpoints: the worker writes every state it holds to its snapshot `name`, atomically, and answers
 * with the ids, bytes and sha256. The coordinator never sees the latents, and never names a path: the
 * worker's host decides where its snapshots live (local threads: the run folder's `snapshots/`; a gRPC
 * worker: its state folder, under the run's scope, proto/worker-setup.ts). Names are tokens
 * (proto/snapshot-name.ts).
 */
export interface SnapshotCommand {
  readonly kind: 'snapshot';
  readonly name: string;
  /** An older snapshot of this worker to delete once `name` is written. */
  readonly dropName?: string;
}

/** Resume: load these states from the snapshot `name`, after checking its sha256. */
export interface RestoreCommand {
  readonly kind: 'restore';
  readonly name: string;
  readonly sha256: string;
  readonly ids: readonly CandidateId[];
}

/** What a snapshot holds, as the worker that wrote it reports. */
export interface SnapshotFile {
  readonly name: string;
  readonly ids: readonly CandidateId[];
  readonly bytes: number;
  readonly sha256: string;
}

/** What a worker executes: the search's commands plus the dispatcher's placement moves. */
export type Command = SearchCommand | ExportCommand | ImportCommand | RecoverCommand | ScoreCommand | SnapshotCommand | RestoreCommand;

/** Bytes a state occupies when it moves (latent, solver memory, cached output). */
export function transferredBytes(state: TransferredState): number {
  return (state.latent.length + (state.previousX0?.length ?? 0) + (state.cachedOutput?.length ?? 0)) * Float32Array.BYTES_PER_ELEMENT;
}

/** Compute spent, counted where it is spent, per latent or sample. A CFG pair is one NFE and two forward passes. */
export interface ComputeCounters {
  /** Network function evaluations (denoiser calls per latent, summed). */
  nfe: number;
  /** Denoiser forward passes per latent, summed (two per NFE under CFG). */
  forwardPasses: number;
  /** Samples decoded (VAE / decoder). */
  decodes: number;
  /** Samples scored. */
  rewardCalls: number;
}

export function zeroCounters(): ComputeCounters {
  return { nfe: 0, forwardPasses: 0, decodes: 0, rewardCalls: 0 };
}

export function addCounters(into: ComputeCounters, more: ComputeCounters): ComputeCounters {
  into.nfe += more.nfe;
  into.forwardPasses += more.forwardPasses;
  into.decodes += more.decodes;
  into.rewardCalls += more.rewardCalls;
  return into;
}

export interface ScoredId {
  readonly id: CandidateId;
  /** The guidance reward. */
  readonly reward: number;
  /** Held-out metrics, by name, where the worker computes them. */
  readonly metrics?: Readonly<Record<string, number>>;
  /**
   * The guidance reward's image embedding of the scored sample (unit-normalised by the reward graph),
   * only when the run asks for it (WorkerSetup.scoreEmbeddings): fitness sharing measures distances
   * between candidates with it.
   */
  readonly embedding?: Float32Array;
}

export interface FetchedSample {
  readonly id: CandidateId;
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** The answer to one command. `scores` follows the order of the command's ids (rollout: its items). */
export interface CommandResult {
  readonly kind: Command['kind'];
  readonly scores: readonly ScoredId[];
  readonly samples: readonly FetchedSample[];
  readonly counters: ComputeCounters;
  /** Exported states (export only). */
  readonly states?: readonly TransferredState[];
  /** The piece's results, in its order (recover only; `counters` then holds the rebuild's compute). */
  readonly results?: readonly CommandResult[];
  /** The snapshot written (snapshot only). */
  readonly snapshot?: SnapshotFile;
}
