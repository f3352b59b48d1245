/**
 * Which runs and batches a gRPC worker takes. Anyone who reaches a worker can call Setup and Execute, so
 * neither may cost another run its place or the worker its memory:
 * - A full worker (`--max-runs`) refuses a new run. Only a run idle past `--idle-run-timeout` (no batch
 *   in flight, none for that long) is closed to make room; a live run is never evicted.
 * - A batch is judged on its header, before any tensor is allocated: its run must be set up here, and
 *   the bytes it announces, with those of the run's other batches in flight, must stay within
 *   `--max-batch-bytes`.
 * - A refusal names the caller's own run at most, never the other runs this worker serves.
 */
import * as grpc from '@grpc/grpc-js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import type { ThreadPool } from './thread-pool.js';

/** Runs held at once by default: each holds a model instance conditioned on its prompt, on its own thread. */
export const DEFAULT_MAX_RUNS = 8;
/** A run with no batch for this long may be closed to make room for a new one (10 minutes). */
export const DEFAULT_IDLE_RUN_MS = 10 * 60_000;
/** Bytes of tensors one run may have arriving at once, its batches together (1 GiB). */
export const DEFAULT_MAX_BATCH_BYTES = 2 ** 30;

export interface AdmissionLimits {
  readonly maxRuns: number;
  readonly idleRunMs: number;
  readonly maxBatchBytes: number;
}

/** A call this worker will not take: the gRPC status to answer with, and why, in the caller's terms. */
export class AdmissionRefusal extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'AdmissionRefusal';
  constructor(readonly status: grpc.status, message: string) {
    super(message);
  }
}

/** A run set up on this worker, and what admission needs to know of it. */
export interface HostedRun {
  readonly pool: ThreadPool;
  /** Batches of the run on their way in or running. */
  inFlight: number;
  /** Tensor bytes its batches in flight announced. */
  bytesInFlight: number;
  /** When its last batch ended, or it was set up (ms, on `now`'s clock). */
  lastActive: number;
}

export class RunAdmission {
  /** The runs set up here, by run id (the coordinator's session). */
  readonly runs = new Map<string, HostedRun>();

  constructor(
    readonly limits: AdmissionLimits,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Whether one more run fits: null when there is room, or the idle run to close for it (idle longest).
   * A refusal (RESOURCE_EXHAUSTED) when the worker is full of runs that are not idle.
   */
  roomForOneMore(): { readonly runId: string; readonly run: HostedRun; readonly idleMs: number } | null {
    if (this.runs.size < this.limits.maxRuns) return null;
    const now = this.now();
    let idlest: { runId: string; run: HostedRun; idleMs: number } | null = null;
    for (const [runId, run] of this.runs) {
      const idleMs = now - run.lastActive;
      if (run.inFlight === 0 && idleMs >= this.limits.idleRunMs && (idlest === null || idleMs > idlest.idleMs)) idlest = { runId, run, idleMs };
    }
    if (idlest !== null) return idlest;
    throw new AdmissionRefusal(
      grpc.status.RESOURCE_EXHAUSTED,
      `this worker holds ${this.runs.size} runs, as many as it may (--max-runs ${this.limits.maxRuns}), and none has been idle for ${describeMs(this.limits.idleRunMs)} (--idle-run-timeout): start it with a larger --max-runs, or use another worker`,
    );
  }

  /** A run just set up. */
  add(runId: string, pool: ThreadPool): HostedRun {
    const run: HostedRun = { pool, inFlight: 0, bytesInFlight: 0, lastActive: this.now() };
    this.runs.set(runId, run);
    return run;
  }

  /**
   * Takes a batch of `bytes` tensor bytes for `runId`, judged on its header: refused unless the run is
   * set up here and within its byte limit. The caller calls `done` once the batch has ended (answered,
   * failed or abandoned); until then it counts as in flight.
   */
  admitBatch(runId: string, bytes: number): { readonly run: HostedRun; readonly done: () => void } {
    const run = this.runs.get(runId);
    if (run === undefined) {
      throw new AdmissionRefusal(grpc.status.FAILED_PRECONDITION, `run ${runId} is not set up on this worker (set it up first; a draining worker closes its runs, and a full one may close a run idle past its --idle-run-timeout)`);
    }
    if (run.bytesInFlight + bytes > this.limits.maxBatchBytes) {
      throw new AdmissionRefusal(
        grpc.status.RESOURCE_EXHAUSTED,
        `a batch of ${bytes} tensor bytes for run ${runId} is over what one run may have arriving at once on this worker, ${this.limits.maxBatchBytes} bytes${run.bytesInFlight > 0 ? ` (${run.bytesInFlight} are in flight already)` : ''} (--max-batch-bytes raises it)`,
      );
    }
    run.inFlight += 1;
    run.bytesInFlight += bytes;
    let ended = false;
    return {
      run,
      done: () => {
        if (ended) return;
        ended = true;
        run.inFlight -= 1;
        run.bytesInFlight -= bytes;
        run.lastActive = this.now();
      },
    };
  }
}

/** A duration as a person reads it: minutes, or seconds under one. */
export function describeMs(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 100) / 10} s`;
}
