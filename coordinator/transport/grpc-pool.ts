/**
 * Workers on other processes or machines, reached over gRPC (proto/worker.proto). Connecting checks
 * each worker's protocol version and model build, then sets the run up on all of them; a batch of
 * commands is one Execute stream per worker, tensors chunked both ways.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command, CommandResult } from '../../proto/commands.js';
import { describeStatus, executeOverGrpc, unaryOverGrpc, withIdempotentRetry, type ExecuteFailure } from '../../proto/worker-client.js';
import { PROTOCOL_VERSION, workerService, type HealthReply, type HelloReply } from '../../proto/worker-service.js';
import type { WorkerSetup } from '../../worker/worker-setup.js';
import { WorkerCommandError, WorkerLostError, type WorkerPool } from '../engine/worker-pool.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

export interface GrpcPoolOptions {
  readonly runId: string;
  /** The model build every worker must serve; default: the first worker's (all must agree). */
  readonly expectedBuild?: string;
  /** Deadline of Hello and Setup (Setup loads the model), milliseconds. Default 120 s. */
  readonly setupDeadlineMs?: number;
  /** Deadline of one batch of commands, milliseconds. Default 30 min. */
  readonly batchDeadlineMs?: number;
  /** Only for tests of version refusal: the version this coordinator claims. */
  readonly protocolVersion?: number;
}

/** A worker was refused at connection: another protocol version or model build, or it is unreachable. */
export class WorkerRefusedError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'WorkerRefusedError';
  constructor(readonly address: string, detail: string, options?: { cause?: unknown }) {
    super(`worker ${address}: ${detail}`, options);
  }
}

const DEFAULTS = { setupDeadlineMs: 120_000, batchDeadlineMs: 30 * 60_000 };

class GrpcWorker {
  constructor(
    readonly address: string,
    readonly client: grpc.Client,
    readonly hello: HelloReply,
    public description: string,
  ) {}
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

  static async connect(addresses: readonly string[], setup: WorkerSetup, options: GrpcPoolOptions): Promise<GrpcWorkerPool> {
    if (addresses.length === 0) throw new RangeError('a gRPC worker pool needs at least one worker address');
    const o = { ...DEFAULTS, ...options };
    const workers: GrpcWorker[] = [];
    try {
      for (const address of addresses) {
        const client = new grpc.Client(address, grpc.credentials.createInsecure());
        const worker = new GrpcWorker(address, client, { protocolVersion: 0, model: '', modelBuild: '', description: '', role: 'both' }, address);
        workers.push(worker);
        let hello: HelloReply;
        try {
          hello = await unaryOverGrpc(worker.client, workerService.hello, { protocolVersion: o.protocolVersion ?? PROTOCOL_VERSION, expectedModelBuild: o.expectedBuild ?? '' }, o.setupDeadlineMs);
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
          const reply = await unaryOverGrpc(worker.client, workerService.setup, { runId: options.runId, setupJson: JSON.stringify(workerSetup) }, o.setupDeadlineMs);
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
    return Promise.all([...this.workers, ...this.scorers].map((w) => unaryOverGrpc(w.client, workerService.health, {}, this.options.setupDeadlineMs)));
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

  /** The model build the workers serve. */
  get build(): string {
    return this.workers[0]!.hello.modelBuild;
  }

  async execute(index: number, commands: readonly Command[]): Promise<CommandResult[]> {
    const worker = this.workers[index]!;
    try {
      return await withIdempotentRetry(commands, () => executeOverGrpc(worker.client, this.runId, commands, this.options.batchDeadlineMs));
    } catch (error) {
      const failure = error as ExecuteFailure;
      throw new (failure.lost ? WorkerLostError : WorkerCommandError)(worker.address, failure.detail, { cause: failure.cause });
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
