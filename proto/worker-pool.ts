import type { Command, CommandResult } from './commands.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/**
 * The coordinator's view of its workers, whatever carries the commands (worker threads in the
 * embedded run, gRPC in the cluster). Commands sent to one worker run in order on that worker.
 */
export interface WorkerPool {
  readonly size: number;
  /** Describes worker `index` for logs (its transport, provider, model build). */
  describe(index: number): string;
  /** What the workers had to fall back on when they started (a GPU provider that did not open), one line each. */
  readonly warnings?: readonly string[];
  /**
   * Runs `commands` on worker `index`, in order. `onSpent`, where the transport carries it, is told
   * the NFEs those commands have spent so far while they run: for progress displays, never for
   * decisions. Once `signal` aborts, the promise rejects with a WorkCancelledError as soon as the
   * transport can stop waiting (a gRPC call is cancelled; a local thread's work is abandoned, its
   * result dropped): the worker may be left mid-batch, so the pool serves nothing more; it is closed.
   */
  execute(index: number, commands: readonly Command[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]>;
  close(): Promise<void>;
  /**
   * Milliseconds worker `index` has spent inside its model runtime, as it last told (a counter that only
   * grows; a gRPC worker counts every run it serves), or null where not known. For displays only.
   */
  modelMsOf?(index: number): number | null;
}

/**
 * Work stopped because its signal aborted (the run was cancelled): nothing failed. The workers may
 * hold half-done batches; the run ends and its pool is closed.
 */
export class WorkCancelledError extends Error {
  override readonly name = 'WorkCancelledError';
  constructor(signal: AbortSignal) {
    super(`cancelled: ${describeReason(signal.reason)}`, { cause: signal.reason });
  }
}

/** An abort reason in words (a signal name, a message, an Error). */
export function describeReason(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return String(reason ?? 'no reason given');
}

/** A worker failed a command; `cause` is what the worker reported. */
export class WorkerCommandError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name: string = 'WorkerCommandError';
  constructor(readonly worker: string, detail: string, options?: { cause?: unknown }) {
    super(`worker ${worker}: ${detail}`, options);
  }
}

/**
 * A worker is gone (its process died, its connection dropped): the states it held are lost, and the
 * dispatcher rebuilds them from their recipes on the others.
 */
export class WorkerLostError extends WorkerCommandError {
  override readonly name = 'WorkerLostError';
}
