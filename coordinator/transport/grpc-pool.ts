/**
 * Workers on other processes or machines, reached over gRPC (proto/worker.proto). Connecting checks
 * each worker's protocol version and model build, then sets the run up on all of them; a batch of
 * commands is one Execute stream per worker, tensors chunked both ways.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command, CommandResult } from '../../proto/commands.js';
import { encodeFrames, FrameAssembler, type Frame } from '../../proto/tensor-frames.js';
import { PROTOCOL_VERSION, workerService, type HealthReply, type HelloReply, type SetupReply } from '../../proto/worker-service.js';
import type { WorkerSetup } from '../../worker/worker-setup.js';
import { WorkerCommandError, WorkerLostError, type WorkerPool } from '../engine/worker-pool.js';

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
export class WorkerRefusedError extends Error {
  override readonly name = 'WorkerRefusedError';
  constructor(readonly address: string, detail: string, options?: { cause?: unknown }) {
    super(`worker ${address}: ${detail}`, options);
  }
}

const DEFAULTS = { setupDeadlineMs: 120_000, batchDeadlineMs: 30 * 60_000 };
/**
 * Status codes that mean the worker (or the way to it) is gone rather than that the batch failed:
 * its states must be rebuilt elsewhere. A worker's own refusal or error comes as another code.
 */
const LOST_CODES = new Set<grpc.status>([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED, grpc.status.UNKNOWN]);
const deadline = (ms: number) => new Date(Date.now() + ms);

class GrpcWorker {
  constructor(
    readonly address: string,
    readonly client: grpc.Client,
    readonly hello: HelloReply,
    public description: string,
  ) {}

  unary<Req, Res>(method: typeof workerService.hello | typeof workerService.setup | typeof workerService.health, request: Req, ms: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(method.path, method.requestSerialize as (r: Req) => Buffer, method.responseDeserialize as (b: Buffer) => Res, request, new grpc.Metadata(), { deadline: deadline(ms) }, (error, reply) => (error ? reject(error) : resolve(reply!)));
    });
  }
}

export class GrpcWorkerPool implements WorkerPool {
  private constructor(
    private readonly workers: GrpcWorker[],
    private readonly runId: string,
    private readonly setup: WorkerSetup,
    private readonly options: GrpcPoolOptions & typeof DEFAULTS,
  ) {}

  static async connect(addresses: readonly string[], setup: WorkerSetup, options: GrpcPoolOptions): Promise<GrpcWorkerPool> {
    if (addresses.length === 0) throw new RangeError('a gRPC worker pool needs at least one worker address');
    const o = { ...DEFAULTS, ...options };
    const workers: GrpcWorker[] = [];
    try {
      for (const address of addresses) {
        const client = new grpc.Client(address, grpc.credentials.createInsecure());
        const worker = new GrpcWorker(address, client, { protocolVersion: 0, model: '', modelBuild: '', description: '' }, address);
        workers.push(worker);
        let hello: HelloReply;
        try {
          hello = await worker.unary(workerService.hello, { protocolVersion: o.protocolVersion ?? PROTOCOL_VERSION, expectedModelBuild: o.expectedBuild ?? '' }, o.setupDeadlineMs);
        } catch (error) {
          throw new WorkerRefusedError(address, describeStatus(error), { cause: error });
        }
        const expected = o.expectedBuild ?? workers[0]!.hello.modelBuild;
        if (workers.length > 1 && hello.modelBuild !== expected) {
          throw new WorkerRefusedError(address, `serves ${hello.model} build ${hello.modelBuild}, but ${workers[0]!.address} serves build ${expected}: every worker of a run must serve the same model files`);
        }
        (worker as { hello: HelloReply }).hello = hello;
      }
      await Promise.all(workers.map(async (worker) => {
        try {
          const reply = await worker.unary<object, SetupReply>(workerService.setup, { runId: options.runId, setupJson: JSON.stringify(setup) }, o.setupDeadlineMs);
          worker.description = `${worker.address} ${reply.description}`;
        } catch (error) {
          throw new WorkerRefusedError(worker.address, `setup failed: ${describeStatus(error)}`, { cause: error });
        }
      }));
    } catch (error) {
      for (const worker of workers) worker.client.close();
      throw error;
    }
    return new GrpcWorkerPool(workers, options.runId, setup, o);
  }

  get size(): number {
    return this.workers.length;
  }

  /** Each worker's health: status, batches in flight, busy time so far. */
  health(): Promise<HealthReply[]> {
    return Promise.all(this.workers.map((w) => w.unary<object, HealthReply>(workerService.health, {}, this.options.setupDeadlineMs)));
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
    const joined = await GrpcWorkerPool.connect([address], this.setup, { ...this.options, expectedBuild: this.build });
    this.workers.push(joined.workers[0]!);
    return this.workers.length - 1;
  }

  describe(index: number): string {
    return this.workers[index]!.description;
  }

  /** The model build the workers serve. */
  get build(): string {
    return this.workers[0]!.hello.modelBuild;
  }

  execute(index: number, commands: readonly Command[]): Promise<CommandResult[]> {
    const worker = this.workers[index]!;
    const m = workerService.execute;
    return new Promise<CommandResult[]>((resolve, reject) => {
      const call = worker.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline: deadline(this.options.batchDeadlineMs) });
      const assembler = new FrameAssembler();
      let settled = false;
      const settle = (action: () => void) => {
        if (settled) return;
        settled = true;
        action();
      };
      call.on('data', (frame: Frame) => {
        try {
          const done = assembler.add(frame);
          if (done !== null) settle(() => resolve(done.body as CommandResult[]));
        } catch (error) {
          settle(() => reject(new WorkerCommandError(worker.address, `bad reply: ${(error as Error).message}`, { cause: error })));
          call.cancel();
        }
      });
      call.on('error', (error: grpc.ServiceError) => settle(() => reject(new (LOST_CODES.has(error.code) ? WorkerLostError : WorkerCommandError)(worker.address, describeStatus(error), { cause: error }))));
      call.on('end', () => settle(() => reject(new WorkerLostError(worker.address, 'the reply ended before its end frame'))));
      void (async () => {
        for (const frame of encodeFrames(this.runId, commands)) {
          if (!call.write(frame)) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      })().catch((error: Error) => settle(() => reject(new WorkerCommandError(worker.address, `sending failed: ${error.message}`, { cause: error }))));
    });
  }

  async close(): Promise<void> {
    for (const worker of this.workers) worker.client.close();
  }
}

function describeStatus(error: unknown): string {
  const e = error as Partial<grpc.ServiceError>;
  if (typeof e.code === 'number') return `${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`;
  return error instanceof Error ? error.message : String(error);
}
