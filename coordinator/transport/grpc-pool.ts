/**
 * Workers on other processes or machines, reached over gRPC (proto/worker.proto). Connecting checks
 * each worker's protocol version and model build, then sets the run up on all of them; a batch of
 * commands is one Execute stream per worker, tensors chunked both ways.
 *
 * A worker that stops answering is lost within seconds, not at the batch deadline: the channels'
 * keepalive (proto/grpc-limits.ts) drops a connection whose peer answers no PING, and while a batch
 * is in flight the worker's Health is polled, so a worker that answers nothing, or answers but makes
 * no progress, has its call cancelled as lost (the dispatcher rebuilds its states on the others).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Command, CommandResult } from '../../proto/commands.js';
import type { TransportSecurity } from '../../proto/transport-security.js';
import { describeStatus, executeOverGrpc, unaryOverGrpc, withIdempotentRetry, workerClient, type ExecuteFailure } from '../../proto/worker-client.js';
import { WORKER_PROTOCOL_VERSION, workerService, type HealthReply, type HelloReply } from '../../proto/worker-service.js';
import type { WorkerSetup } from '../../proto/worker-setup.js';
import { setupToWire } from '../../proto/setup-message.js';
import { WorkCancelledError, WorkerCommandError, WorkerLostError, type WorkerPool } from '../../proto/worker-pool.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';
import type { WireMeter } from '../../metrics/wire-meter.js';
import { meteredService } from '../../proto/metered-service.js';

export interface GrpcPoolOptions {
  readonly runId: string;
  /** How the workers are reached (default plaintext, loopback only); under mTLS each must show a worker certificate. */
  readonly transport?: TransportSecurity;
  /** The model build every worker must serve; default: the first worker's (all must agree). */
  readonly expectedBuild?: string;
  /** Deadline of Hello and Setup (Setup loads the model), milliseconds. Default 120 s. */
  readonly setupDeadlineMs?: number;
  /**
   * Deadline of one batch of commands, milliseconds. Default 30 min: the last resort, for a worker
   * that answers Health and makes progress but never finishes.
   */
  readonly batchDeadlineMs?: number;
  /**
   * While a batch is in flight on a worker, its Health is asked this often, milliseconds. Default
   * 2 s. 0: never (then only the transport's keepalive notices a lost worker).
   */
  readonly healthEveryMs?: number;
  /**
   * A worker that answers no Health for this long while a batch is in flight on it is lost,
   * milliseconds. Default 6 s: three polls unanswered. A stopped process or a cut connection is
   * usually named by the keepalive first (4 to 6 s, proto/grpc-limits.ts); this catches a worker whose
   * connection is alive but whose event loop is not, and is long enough that one only slow for a
   * moment (a large frame copied, a GC) is not lost.
   */
  readonly silentAfterMs?: number;
  /**
   * A worker that answers Health but whose NFE counter has not moved for this long, while a batch
   * that runs the model is in flight on it, is lost, milliseconds. Default 5 min. The counter moves
   * after each model call, so this must outlast the longest stretch between two: one call of the
   * largest model (a video transformer step at full batch: tens of seconds), then the decoding and
   * scoring of a batch of its samples (a minute or two, on a reward worker when scoring is remote),
   * with room to spare: a false call costs a rebuild of the worker's states. It still ends a hung
   * compute six times sooner than the batch deadline. Batches that run no model (exports, imports,
   * snapshots, fetches, scores) are not held to it, nor workers of earlier releases (no counter).
   */
  readonly stallAfterMs?: number;
  /** Only for tests of version refusal: the version this coordinator claims. */
  readonly protocolVersion?: number;
  /** Told the bytes of every message to and from the workers (the coordinator's metrics). */
  readonly wire?: WireMeter;
}

/** A worker was refused at connection: another protocol version or model build, or it is unreachable. */
export class WorkerRefusedError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'WorkerRefusedError';
  constructor(readonly address: string, detail: string, options?: { cause?: unknown }) {
    super(`worker ${address}: ${detail}`, options);
  }
}

const DEFAULTS = { setupDeadlineMs: 120_000, batchDeadlineMs: 30 * 60_000, healthEveryMs: 2000, silentAfterMs: 6000, stallAfterMs: 5 * 60_000 };

class GrpcWorker {
  constructor(
    readonly address: string,
    readonly client: grpc.Client,
    readonly hello: HelloReply,
    public description: string,
  ) {}

  /** Its model time as its last Health answer said (HealthReply.model_ms), if one came. */
  modelMs: number | null = null;
}

export class GrpcWorkerPool implements WorkerPool {
  private constructor(
    private readonly workers: GrpcWorker[],
    private readonly runId: string,
    private readonly setup: WorkerSetup,
    private readonly options: GrpcPoolOptions & typeof DEFAULTS,
    /** Reward-only workers: they score the denoising-only workers' samples, and take no commands from here. */
    private readonly scorers: readonly GrpcWorker[] = [],
  ) {}

  /** How this pool reaches its workers (workers that join later are reached the same way). */
  get transport(): TransportSecurity | undefined {
    return this.options.transport;
  }

  /** What is told the bytes of its messages (workers that join later are counted the same way). */
  get wire(): WireMeter | undefined {
    return this.options.wire;
  }

  /** The worker service's methods, counted by `wire` when there is one. */
  private get service(): typeof workerService {
    return meteredService(workerService, this.options.wire);
  }

  static async connect(addresses: readonly string[], setup: WorkerSetup, options: GrpcPoolOptions): Promise<GrpcWorkerPool> {
    if (addresses.length === 0) throw new RangeError('a gRPC worker pool needs at least one worker address');
    const o = { ...DEFAULTS, ...options };
    const service = meteredService(workerService, options.wire);
    const workers: GrpcWorker[] = [];
    try {
      for (const address of addresses) {
        const client = workerClient(address, options.transport);
        const worker = new GrpcWorker(address, client, { protocolVersion: 0, model: '', modelBuild: '', description: '', role: 'both' }, address);
        workers.push(worker);
        let hello: HelloReply;
        try {
          hello = await unaryOverGrpc(worker.client, service.hello, { protocolVersion: o.protocolVersion ?? WORKER_PROTOCOL_VERSION, expectedModelBuild: o.expectedBuild ?? '' }, o.setupDeadlineMs);
        } catch (error) {
          throw new WorkerRefusedError(address, describeStatus(error), { cause: error });
        }
        const expected = o.expectedBuild ?? workers[0]!.hello.modelBuild;
        if (workers.length > 1 && hello.modelBuild !== expected) {
          throw new WorkerRefusedError(address, `serves ${hello.model} build ${hello.modelBuild}, but ${workers[0]!.address} serves build ${expected}: every worker of a run must serve the same model files`);
        }
        (worker as { hello: HelloReply }).hello = hello;
      }
      // Reward workers score for the denoising-only ones; workers serving both roles score locally.
      const scorers = workers.filter((w) => w.hello.role === 'reward');
      const denoisers = workers.filter((w) => w.hello.role !== 'reward');
      if (denoisers.length === 0) throw new WorkerRefusedError(addresses.join(', '), 'none of these workers denoises (all serve --role reward)');
      const denoiseOnly = denoisers.filter((w) => w.hello.role === 'denoise');
      if (denoiseOnly.length > 0 && scorers.length === 0) throw new WorkerRefusedError(denoiseOnly[0]!.address, 'serves --role denoise, but no reward worker is in the run to score its samples');
      const setUp = async (worker: GrpcWorker, workerSetup: WorkerSetup) => {
        try {
          const reply = await unaryOverGrpc(worker.client, service.setup, { runId: options.runId, setup: setupToWire(workerSetup) }, o.setupDeadlineMs);
          worker.description = `${worker.address} ${reply.description}`;
        } catch (error) {
          throw new WorkerRefusedError(worker.address, `setup failed: ${describeStatus(error)}`, { cause: error });
        }
      };
      await Promise.all(scorers.map((w) => setUp(w, setup)));
      const remote = { ...setup, rewardWorkers: { addresses: scorers.map((w) => w.address), runId: options.runId } };
      await Promise.all(denoisers.map((w) => setUp(w, w.hello.role === 'denoise' ? remote : setup)));
      return new GrpcWorkerPool(denoisers, options.runId, setup, o, scorers);
    } catch (error) {
      for (const worker of workers) worker.client.close();
      throw error;
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Each worker's health (status, batches, busy time so far): the denoising workers by index, then the reward workers. */
  health(): Promise<HealthReply[]> {
    const health = this.service.health;
    return Promise.all([...this.workers, ...this.scorers].map((w) => unaryOverGrpc(w.client, health, {}, this.options.setupDeadlineMs)));
  }

  /** Addresses of the workers, by index. */
  get addresses(): readonly string[] {
    return this.workers.map((w) => w.address);
  }

  /**
   * Adds a worker that joined during the run: checked (protocol, model build) and set up like the
   * first ones, then it takes work from the next round. Returns its index.
   */
  async add(address: string): Promise<number> {
    // The run's reward workers come along, so a denoising-only worker knows where to score.
    const joined = await GrpcWorkerPool.connect([address, ...this.rewardAddresses], this.setup, { ...this.options, expectedBuild: this.build });
    const worker = joined.workers.find((w) => w.address === address);
    if (worker === undefined) throw new WorkerRefusedError(address, 'serves --role reward: reward workers join a run at its start');
    this.workers.push(worker);
    return this.workers.length - 1;
  }

  describe(index: number): string {
    return this.workers[index]!.description;
  }

  /** Worker `index`'s model time as its last Health answer (polled while its batches run) said, all its runs together. */
  modelMsOf(index: number): number | null {
    return this.workers[index]?.modelMs ?? null;
  }

  /** The model build the workers serve. */
  get build(): string {
    return this.workers[0]!.hello.modelBuild;
  }

  /**
   * Runs `commands` on worker `index`. While they run, the worker's Health is polled (healthEveryMs):
   * `onSpent` (displays only) is told the NFEs its counter has moved since the batch began, which on
   * a worker shared with other runs counts their work too; a worker that stops answering or making
   * progress has its call cancelled and the batch fails with a WorkerLostError saying what was seen.
   * `signal` cancels the call (WorkCancelledError).
   */
  async execute(index: number, commands: readonly Command[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]> {
    const worker = this.workers[index]!;
    // Aborted by the run's signal (WorkCancelledError) or by the watch below (WorkerLostError).
    const stop = new AbortController();
    const cancel = () => stop.abort(new WorkCancelledError(signal!));
    if (signal?.aborted) cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    const service = this.service;
    const watch = this.options.healthEveryMs > 0 ? new BatchWatch(worker, service.health, this.options, commands.some(runsModel), onSpent, (detail) => stop.abort(new WorkerLostError(worker.address, `${detail}; its call is cancelled and its states are rebuilt on the other workers`))) : null;
    try {
      return await withIdempotentRetry(commands, () => executeOverGrpc(worker.client, this.runId, commands, this.options.batchDeadlineMs, stop.signal, service.execute));
    } catch (error) {
      if (stop.signal.aborted) throw stop.signal.reason;
      const failure = error as ExecuteFailure;
      throw new (failure.lost ? WorkerLostError : WorkerCommandError)(worker.address, failure.detail, { cause: failure.cause });
    } finally {
      watch?.stop();
      signal?.removeEventListener('abort', cancel);
    }
  }

  /** Addresses of the reward-only workers serving this run. */
  get rewardAddresses(): readonly string[] {
    return this.scorers.map((w) => w.address);
  }

  async close(): Promise<void> {
    for (const worker of [...this.workers, ...this.scorers]) worker.client.close();
  }
}

/** Commands that call the model, so the worker's NFE counter moves while they run. */
function runsModel(command: Command): boolean {
  return command.kind === 'advance' || command.kind === 'rollout' || command.kind === 'recover';
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Watches one worker while a batch is in flight on it: asks its Health every `healthEveryMs` (one
 * question at a time) and calls `lost` once, when the worker has answered nothing for
 * `silentAfterMs`, or (for a batch that runs the model) its NFE counter has not moved for
 * `stallAfterMs`. The clocks start with the batch.
 */
class BatchWatch {
  private heardAt: number;
  private movedAt: number;
  private tickedAt: number;
  /** The worker's NFE counter: when the batch began (its first answer), and its latest value. */
  private first: number | null = null;
  private latest: number | null = null;
  private asking = false;
  private stopped = false;
  private timer: NodeJS.Timeout;

  constructor(
    private readonly worker: GrpcWorker,
    private readonly healthMethod: typeof workerService.health,
    private readonly options: { readonly healthEveryMs: number; readonly silentAfterMs: number; readonly stallAfterMs: number },
    private readonly runsModel: boolean,
    private readonly onSpent: ((nfe: number) => void) | undefined,
    private readonly lost: (detail: string) => void,
  ) {
    this.heardAt = this.movedAt = this.tickedAt = performance.now();
    // Asked at once, so the counter's value at the batch's start is known for onSpent.
    this.ask();
    this.timer = setTimeout(() => this.tick(), options.healthEveryMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private tick(): void {
    if (this.stopped) return;
    const now = performance.now();
    // Time this process itself stood still (its event loop blocked, its machine suspended) is not
    // the worker's silence: the answers it sent meanwhile are only now being read.
    const late = now - this.tickedAt - this.options.healthEveryMs;
    if (late > this.options.healthEveryMs) {
      this.heardAt += late;
      this.movedAt += late;
    }
    this.tickedAt = now;
    const silent = now - this.heardAt;
    if (silent >= this.options.silentAfterMs) {
      return this.give(`no Health answer for ${seconds(silent)} while a batch was in flight on it (its process is stopped or hung, or the way to it is cut)`);
    }
    const still = now - this.movedAt;
    if (this.runsModel && this.latest !== null && still >= this.options.stallAfterMs) {
      return this.give(`answers Health, but no progress for ${seconds(still)}: its NFE counter stayed at ${this.latest} while a batch that runs the model was in flight on it (its compute is stuck)`);
    }
    this.ask();
    this.timer = setTimeout(() => this.tick(), this.options.healthEveryMs);
  }

  private give(detail: string): void {
    this.stop();
    this.lost(detail);
  }

  private ask(): void {
    if (this.asking) return;
    this.asking = true;
    // A late answer still counts: the deadline is the silence allowed, not the polling interval.
    unaryOverGrpc(this.worker.client, this.healthMethod, {}, this.options.silentAfterMs)
      .then((reply) => this.heard(reply), () => undefined)
      .finally(() => (this.asking = false));
  }

  private heard(reply: HealthReply): void {
    if (this.stopped) return;
    const now = performance.now();
    this.heardAt = now;
    this.worker.modelMs = reply.modelMs;
    // A worker of an earlier release counts no NFEs: it is watched for its answers alone.
    if (reply.nfe === undefined) return;
    if (this.first === null) {
      this.first = this.latest = reply.nfe;
      this.movedAt = now;
      return;
    }
    if (reply.nfe <= this.latest!) return;
    this.latest = reply.nfe;
    this.movedAt = now;
    try {
      this.onSpent?.(reply.nfe - this.first);
    } catch {
      // A display's bug never fails a batch.
    }
  }
}
