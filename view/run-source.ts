/**
 * What the live view serves from: whoever holds runs (the coordinator service, or one run folder for
 * `evosearch view`) answers these questions for a caller, and decides which runs that caller may see.
 * The view server never reads a run folder or a run's state itself: it asks here, so the same
 * authorization as the coordinator's gRPC API applies (a run the caller may not see is not found).
 */
import type { TypedRunEvent } from '../proto/coordinator-messages.js';
import type { Principal } from './principal.js';

/** A run as the list of runs shows it. */
export interface RunListing {
  readonly runId: string;
  /** queued | running | finished | failed | cancelled | interrupted */
  readonly state: string;
  readonly model: string;
  readonly method: string;
  readonly prompt: string | null;
  /** When it was submitted or started (RFC 3339), if known. */
  readonly submittedAt: string | null;
  readonly best: number | null;
}

/** Whether the caller can cancel the run from the view, or why not. */
export type Cancellable = { readonly possible: true } | { readonly possible: false; readonly why: string };

/** A subscription to a run's events: what happened so far, and whether the run has ended. */
export interface Following {
  readonly past: readonly TypedRunEvent[];
  /** The run has had its last event: nothing more comes (the listener is not kept). */
  readonly ended: boolean;
  stop(): void;
}

/** A small image of one scored sample: floats in [0, 1], channels first ([C, H, W] or [F, C, H, W]). */
export interface ThumbnailData {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

export interface ViewableRun {
  listing(): RunListing;
  cancellable(): Cancellable;
  /**
   * Every event so far and then each one as it comes (in order, none twice, none missed in between),
   * until the run's last event (`onEvent` is then called with it and no more) or `stop`.
   */
  follow(onEvent: (event: TypedRunEvent) => void): Following;
  /** Asks the run to stop between rounds (the coordinator's own cancel path); its state after asking. */
  cancel(): Promise<string>;
  /**
   * The run folder's files as the coordinator's Files call serves them (regular files of the folder,
   * no links, nothing outside it), or why not yet (a run that has not finished).
   */
  files(): { readonly files: AsyncIterable<{ readonly name: string; readonly bytes: Buffer }> } | { readonly refused: string };
  /** The thumbnail of `candidate` as round `round` scored it, if the run kept one. */
  thumbnail(round: number, candidate: number): Promise<ThumbnailData | null>;
}

export interface RunSource {
  /** What the caller may see, oldest first. */
  list(caller: Principal): readonly RunListing[];
  /** The run, if it exists and the caller may see it (otherwise undefined: not found, whichever it is). */
  find(runId: string, caller: Principal): ViewableRun | undefined;
  /** Whether `runId` has the shape of this source's run ids (judged before any lookup). */
  isRunId(runId: string): boolean;
  /** The page's heading: what serves (a coordinator, one run folder). */
  readonly title: string;
}
