/**
 * A worker node's gRPC service (proto/worker.proto): it checks the coordinator's protocol version and
 * model build, sets up the run, and runs command batches on a worker thread (model calls block the
 * thread they run on; the server's event loop stays free for gRPC). SIGTERM drains it: no new batches,
 * the ones in flight finish, then it stops (`evosearch worker` ends the process anyway when a drain
 * takes longer than its --drain-timeout: cli/stop-signals.ts).
 */
import type { CudaProviderOptions } from './runtime/providers.js';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ThreadPool } from './thread-pool.js';
import { TurnQueue } from '../async/timeouts-and-turns.js';
import { workerServerOptions } from '../proto/grpc-limits.js';
import { encodeFrames, FrameAssembler, type Frame } from '../proto/tensor-frames.js';
import { WORKER_PROTOCOL_VERSION, workerService, type HealthReply, type HelloReply, type HelloRequest, type SetupReply, type SetupRequest, type WorkerRole } from '../proto/worker-service.js';
import { modelBuild } from './model-build.js';
import { PLAINTEXT_LOOPBACK, refusalUnlessRole, serverCredentials, type TransportSecurity } from '../proto/transport-security.js';
import type { WorkerSetup } from '../proto/worker-setup.js';
import { setupFromWire } from '../proto/setup-message.js';
import { resolveSamplerConfig } from '../samplers/index.js';
import { AdmissionRefusal, DEFAULT_IDLE_RUN_MS, DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_RUNS, describeMs, RunAdmission } from './run-admission.js';
import { DEFAULT_STATE_TTL_MS, defaultStateFolder, openStateFolder, scopeFolder, sweepStaleScopes } from './state-folder.js';
import { ModelRoots, workerModelRoots } from './bundles/model-roots.js';
import { bundlePath } from './models/load-model.js';
import { ProcessHealth } from '../metrics/process-health.js';
import type { Registry } from '../metrics/registry.js';
import { WorkerMetrics, type WorkerCounts } from '../metrics/worker-metrics.js';
import { serveHealth, type ServedHealth } from '../proto/health-service.js';
import { meteredService, serviceNameOf } from '../proto/metered-service.js';

export interface WorkerServerOptions {
  /** The model this worker serves (a bundle folder or an analytic spec). */
  readonly model: string;
  /** Runs set up at once (default 8): each holds a model instance conditioned on its prompt. */
  readonly maxRuns?: number;
  /** A run with no batch for this long may be closed when a new run needs its place (default 10 min). */
  readonly idleRunMs?: number;
  /** Tensor bytes one run's batches may announce at once (default 1 GiB); a batch past it is refused. */
  readonly maxBatchBytes?: number;
  /** Where this worker keeps its runs' snapshots (default ~/.evosearch/worker-state; made 0700). */
  readonly stateDir?: string;
  /** A run's snapshots, unused by a live run and unwritten this long, are deleted (default a week; state-folder.ts). */
  readonly stateTtlMs?: number;
  /**
   * The folders it loads rewards manifests (and what they name) from, beside the bundle it serves
   * (default: the repository's models/bundles). Any other path a coordinator names is refused.
   */
  readonly modelRoots?: readonly string[];
  /** What this worker serves (default both). */
  readonly role?: WorkerRole;
  readonly providers?: readonly string[];
  /** This worker's CUDA provider options: its GPU is its own business, so a run's options never apply here. */
  readonly cuda?: CudaProviderOptions;
  /** onnxruntime threads per session on this worker (default: one per core). */
  readonly intraOpThreads?: number;
  /** How coordinators reach this worker and it reaches reward workers (default plaintext, loopback only). */
  readonly transport?: TransportSecurity;
  readonly logger: Logger;
  /**
   * What its health service (and the caller's /readyz) says: it must wait for MODEL_CONDITION, which
   * the server meets once its model is read; the caller adds its own (NATS). Default: one of its own.
   */
  readonly health?: ProcessHealth;
  /** Where its metrics go (metrics/worker-metrics.ts); none when absent. */
  readonly metrics?: Registry;
}

/** The readiness condition a worker server meets once it knows its model (its files read, its build known). */
export const MODEL_CONDITION = 'model';
/** The condition a draining or stopped worker no longer meets. */
export const DRAIN_CONDITION = 'drain';
/** Not ready from the first moment of a drain: probes and watchers see it before the worker stops answering. */
export function markDraining(health: ProcessHealth): void {
  health.readiness.unmetBecause(DRAIN_CONDITION, 'it is draining: it takes no new runs or batches');
}
/** A new ProcessHealth for a worker, waiting for its model and for `more` conditions (name: why not yet). */
export function workerHealth(more: Readonly<Record<string, string>> = {}): ProcessHealth {
  return new ProcessHealth({ [MODEL_CONDITION]: 'its model files are not read yet', ...more });
}

type ServiceError = Partial<grpc.StatusObject> & { code: grpc.status; details: string };

export class WorkerServer {
  /**
   * The runs set up here: several runs (e.g. the prompts of one benchmark) share a worker at once, each
   * on its own thread with its own conditioning. Which runs and batches it takes: worker/run-admission.ts.
   */
  private readonly admission: RunAdmission;
  private get runs() {
    return this.admission.runs;
  }
  /** Its runs' snapshots go to `<stateFolder>/<run scope>/`; nothing from the wire names a path. */
  private readonly stateFolder: string;
  private readonly modelRoots: ModelRoots;
  private readonly setups = new TurnQueue();
  private inFlight = 0;
  private busyMs = 0;
  /** Time inside session.run, from each run's threads; the last total seen per run's pool. */
  private modelMs = 0;
  private readonly modelMsSeen = new WeakMap<ThreadPool, number>();
  private batches = 0;
  /** NFEs of the batches that ended, and the running count of each batch in flight (Health's nfe). */
  private nfeDone = 0;
  private readonly nfeRunning = new Set<{ nfe: number }>();
  private draining = false;
  private idle: (() => void) | null = null;
  /** GPU work, one piece at a time (see onDevice). */
  private readonly deviceTurns = new TurnQueue();
  /** The snapshot scope of each run set up (a resumed run keeps its scope under a new session id). */
  private readonly scopes = new Map<string, string>();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly metrics: WorkerMetrics | null;

  private constructor(
    private readonly server: grpc.Server,
    private readonly options: WorkerServerOptions,
    readonly build: string,
    readonly address: string,
    readonly health: ProcessHealth,
    private readonly servedHealth: ServedHealth,
    /** Whether `health` is this server's own (it stops it when it stops). */
    private readonly ownHealth: boolean,
  ) {
    this.admission = new RunAdmission({ maxRuns: options.maxRuns ?? DEFAULT_MAX_RUNS, idleRunMs: options.idleRunMs ?? DEFAULT_IDLE_RUN_MS, maxBatchBytes: options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES });
    try {
      this.stateFolder = openStateFolder(options.stateDir ?? defaultStateFolder());
      this.modelRoots = new ModelRoots(workerModelRoots(bundlePath(options.model), options.modelRoots ?? []));
    } catch (error) {
      // The port is bound already: a worker that cannot serve lets it go, or its process would never end.
      servedHealth.close();
      server.forceShutdown();
      if (ownHealth) health.close();
      throw error;
    }
    this.metrics = options.metrics === undefined ? null : new WorkerMetrics(options.metrics, () => this.counts());
    options.logger.info({ stateDir: this.stateFolder, modelRoots: this.modelRoots.folders, ...this.admission.limits }, 'worker limits and folders');
    // At start (what earlier processes left) and then every hour, or every tenth of a shorter lifetime.
    const ttlMs = options.stateTtlMs ?? DEFAULT_STATE_TTL_MS;
    this.sweepStates(ttlMs);
    this.sweeper = setInterval(() => this.sweepStates(ttlMs), Math.min(3600_000, Math.max(1000, ttlMs / 10)));
    this.sweeper.unref();
  }

  /** Deletes the snapshot folders no live run uses that outlived their time (state-folder.ts). */
  private sweepStates(ttlMs: number): void {
    for (const runId of this.scopes.keys()) if (!this.runs.has(runId)) this.scopes.delete(runId);
    try {
      const removed = sweepStaleScopes(this.stateFolder, ttlMs, new Set(this.scopes.values()));
      if (removed.length > 0) this.options.logger.info({ scopes: removed, ttl: describeMs(ttlMs) }, `deleted the snapshots of ${removed.length} run(s) unused for ${describeMs(ttlMs)}`);
    } catch (error) {
      this.options.logger.warn({ stateDir: this.stateFolder, error: (error as Error).message }, 'could not sweep old snapshots');
    }
  }

  /**
   * Binds `address` (port 0 picks a free one) and serves until drained. The health service answers
   * from the moment the port is bound (NOT_SERVING while the model's files are read and hashed, which
   * takes a while for a large bundle); the worker service once the model's build is known.
   */
  static async start(address: string, options: WorkerServerOptions): Promise<WorkerServer> {
    // Plaintext on a non-loopback address is refused before the model opens.
    const transport = options.transport ?? PLAINTEXT_LOOPBACK;
    const credentials = serverCredentials(transport, address);
    const server = new grpc.Server(workerServerOptions);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    const health = options.health ?? workerHealth();
    const servedHealth = serveHealth(server, health, serviceNameOf(workerService));
    let build: string;
    try {
      build = await modelBuild(options.model);
    } catch (error) {
      servedHealth.close();
      server.forceShutdown();
      if (options.health === undefined) health.close();
      throw error;
    }
    const host = address.slice(0, address.lastIndexOf(':'));
    const worker = new WorkerServer(server, options, build, `${host}:${port}`, health, servedHealth, options.health === undefined);
    // Only coordinators (and the run's other workers, for scoring) may use a worker.
    const refusal = (call: Parameters<typeof refusalUnlessRole>[1]) => refusalUnlessRole(transport, call, 'worker', ['coordinator', 'worker']);
    // Every message of the service is counted (metrics/worker-metrics.ts), the Execute frames above all.
    server.addService(meteredService(workerService, worker.metrics?.wire), {
      hello: (call: grpc.ServerUnaryCall<HelloRequest, HelloReply>, done: grpc.sendUnaryData<HelloReply>) => { const refused = refusal(call); return refused === null ? worker.hello(call.request, done) : done(refused); },
      setup: (call: grpc.ServerUnaryCall<SetupRequest, SetupReply>, done: grpc.sendUnaryData<SetupReply>) => { const refused = refusal(call); return refused === null ? void worker.setup(call.request, done) : done(refused); },
      health: (call: grpc.ServerUnaryCall<unknown, HealthReply>, done: grpc.sendUnaryData<HealthReply>) => { const refused = refusal(call); return refused === null ? done(null, worker.healthReply()) : done(refused); },
      execute: (call: grpc.ServerDuplexStream<Frame, Frame>) => {
        const refused = refusal(call);
        if (refused === null) worker.execute(call);
        else call.emit('error', refused);
      },
    });
    health.readiness.met(MODEL_CONDITION);
    options.logger.info({ address: worker.address, model: options.model, build }, 'worker serving');
    return worker;
  }

  private hello(request: HelloRequest, done: grpc.sendUnaryData<HelloReply>): void {
    if (request.protocolVersion !== WORKER_PROTOCOL_VERSION) {
      done(refusal(grpc.status.FAILED_PRECONDITION, `this worker speaks protocol version ${WORKER_PROTOCOL_VERSION}, the coordinator ${request.protocolVersion}: run the same evosearch release on both`));
      return;
    }
    if (request.expectedModelBuild !== '' && request.expectedModelBuild !== this.build) {
      done(refusal(grpc.status.FAILED_PRECONDITION, `this worker serves ${this.options.model} build ${this.build}, the run needs build ${request.expectedModelBuild}: start this worker with the run's model (the same spec, the same files)`));
      return;
    }
    done(null, { protocolVersion: WORKER_PROTOCOL_VERSION, model: this.options.model, modelBuild: this.build, description: `grpc ${this.address} ${this.options.model} (${this.options.role ?? 'both'})`, role: this.options.role ?? 'both' });
  }

  private async setup(request: SetupRequest, done: grpc.sendUnaryData<SetupReply>): Promise<void> {
    if (this.draining) return done(refusal(grpc.status.UNAVAILABLE, 'this worker is draining'));
    // Setups run one at a time: a second coordinator call for the same run waits for the first.
    await this.setups.run(async () => {
      const existing = this.runs.get(request.runId);
      if (existing !== undefined) return done(null, { description: existing.pool.describe(0) });
      let setup: WorkerSetup;
      try {
        // The worker's own model and GPU options (the run's are its coordinator's); providers and
        // threads are the run's unless this worker was started with its own.
        const { cuda: _runCuda, ...asked } = setupFromWire(request.setup);
        setup = { ...asked, model: this.options.model, ...(this.options.providers ? { providers: this.options.providers } : {}), ...(this.options.cuda !== undefined ? { cuda: this.options.cuda } : {}), ...(this.options.intraOpThreads !== undefined ? { intraOpThreads: this.options.intraOpThreads } : {}) };
        resolveSamplerConfig(setup.sampler);
        // Judged on its path alone, before the file is looked at (worker/bundles/model-roots.ts).
        if (setup.rewards !== undefined) this.modelRoots.confine(setup.rewards, 'setup.rewards');
      } catch (error) {
        return done(refusal(grpc.status.INVALID_ARGUMENT, `cannot set up run ${request.runId}: ${(error as Error).message}`));
      }
      // A full worker says so before it starts a thread for nothing.
      try {
        this.admission.roomForOneMore();
      } catch (error) {
        return done(asRefusal(error));
      }
      // Scoped by the run, not the session: a resumed run (a new session) finds its snapshots.
      const scope = setup.snapshotScope ?? request.runId;
      const snapshotFolder = scopeFolder(this.stateFolder, scope);
      let pool: ThreadPool;
      try {
        pool = await this.onDevice(() => ThreadPool.start(1, setup, { modelRoots: this.modelRoots.folders, ...(snapshotFolder !== null ? { snapshotFolder } : {}), ...(this.options.transport !== undefined ? { transport: this.options.transport } : {}) }));
        for (const warning of pool.warnings) this.options.logger.warn({ runId: request.runId }, warning);
      } catch (error) {
        return done(refusal(grpc.status.FAILED_PRECONDITION, `cannot set up run ${request.runId}: ${(error as Error).message}`));
      }
      if (this.draining) {
        // A SIGTERM came while the run's thread started: the drain has closed the runs it knew of, so
        // this one is closed here instead of being left running.
        await pool.close();
        return done(refusal(grpc.status.UNAVAILABLE, 'this worker is draining'));
      }
      // Judged again: a run that was idle may have taken a batch while the thread started.
      let room;
      try {
        room = this.admission.roomForOneMore();
      } catch (error) {
        await pool.close();
        return done(asRefusal(error));
      }
      if (room !== null) {
        this.runs.delete(room.runId);
        await room.run.pool.close();
        this.options.logger.info({ runId: room.runId, idle: describeMs(room.idleMs), for: request.runId }, `run closed to make room: idle for ${describeMs(room.idleMs)}, past the idle timeout`);
      }
      this.admission.add(request.runId, pool);
      this.scopes.set(request.runId, scope);
      this.options.logger.info({ runId: request.runId, description: pool.describe(0), runs: this.runs.size }, 'run set up');
      done(null, { description: pool.describe(0) });
    });
  }

  private healthReply(): HealthReply {
    const counts = this.counts();
    return { status: this.draining ? 'draining' : this.runs.size === 0 ? 'idle' : 'serving', inFlight: counts.batchesInFlight, busyMs: counts.busyMs, modelMs: counts.modelMs, batches: counts.batches, nfe: counts.nfe };
  }

  /** Its counts since it started, all runs: the Health RPC's and the metrics'. */
  private counts(): WorkerCounts {
    let nfe = this.nfeDone;
    for (const running of this.nfeRunning) nfe += running.nfe;
    return { runs: this.runs.size, batchesInFlight: this.inFlight, batches: this.batches, nfe, busyMs: this.busyMs, modelMs: this.modelMs };
  }

  private execute(call: grpc.ServerDuplexStream<Frame, Frame>): void {
    // The header is judged before anything is allocated: its run must be set up here, and within its
    // byte limit (worker/run-admission.ts). The batch counts as in flight from then until it ends.
    let admitted: ReturnType<RunAdmission['admitBatch']> | null = null;
    const assembler = new FrameAssembler('commands', undefined, (runId, bytes) => {
      if (this.draining) throw new AdmissionRefusal(grpc.status.UNAVAILABLE, 'this worker is draining: send the batch elsewhere');
      admitted = this.admission.admitBatch(runId, bytes);
    });
    let failed = false;
    const fail = (error: ServiceError) => {
      admitted?.done();
      if (failed) return;
      failed = true;
      call.emit('error', error);
    };
    // The coordinator gave up on the batch (found this worker slow or silent, or its run was
    // cancelled), or the connection dropped: the batch still runs to its end here (a model call cannot
    // be interrupted), but its answer goes nowhere, and waiting to send it would hold the batch in
    // flight, and a drain, forever.
    let cancelled = false;
    let handedToThread = false;
    const gone = new Promise<void>((resolve) => call.once('cancelled', () => {
      cancelled = true;
      // Abandoned while it arrived: nothing will end it but this.
      if (!handedToThread) admitted?.done();
      resolve();
    }));
    call.on('data', (frame: Frame) => {
      let assembled;
      try {
        assembled = assembler.add(frame);
      } catch (error) {
        return fail(asRefusal(error));
      }
      if (assembled === null) return;
      if (this.draining) return fail(refusal(grpc.status.UNAVAILABLE, 'this worker is draining: send the batch elsewhere'));
      // The run may have been closed while its batch arrived (a drain).
      const pool = admitted !== null && this.runs.get(assembled.runId) === admitted.run ? admitted.run.pool : undefined;
      if (pool === undefined) return fail(refusal(grpc.status.FAILED_PRECONDITION, `run ${assembled.runId} is not set up on this worker`));
      const batch = admitted!;
      handedToThread = true;
      this.inFlight += 1;
      let started = 0;
      // The thread's running NFE count of this batch, for Health: coordinators watch it move.
      const running = { nfe: 0 };
      this.nfeRunning.add(running);
      this.onDevice(() => {
        started = performance.now();
        return pool.execute(0, assembled.body, (nfe) => (running.nfe = Math.max(running.nfe, nfe)));
      })
        .then(async (results) => {
          // The batch's counted total (the thread's last report may be up to 200 ms old); never less
          // than what Health has already shown, so the counter only grows.
          this.nfeDone += Math.max(running.nfe, results.reduce((sum, r) => sum + r.counters.nfe, 0));
          this.nfeRunning.delete(running);
          this.busyMs += performance.now() - started;
          const modelMs = pool.modelMs();
          this.modelMs += modelMs - (this.modelMsSeen.get(pool) ?? 0);
          this.modelMsSeen.set(pool, modelMs);
          this.batches += 1;
          for (const out of encodeFrames(assembled.runId, 'results', results)) {
            if (cancelled) break;
            if (!call.write(out)) await Promise.race([new Promise((resolve) => call.once('drain', resolve)), gone]);
          }
          if (cancelled) {
            this.options.logger.info({ runId: assembled.runId }, 'batch finished after its call was cancelled: its answer is dropped');
            return;
          }
          call.end();
        })
        .catch((error: Error) => fail(refusal(grpc.status.INTERNAL, error.message)))
        .finally(() => {
          batch.done();
          if (this.nfeRunning.delete(running)) this.nfeDone += running.nfe;
          this.inFlight -= 1;
          if (this.inFlight === 0) this.idle?.();
        });
    });
  }

  /**
   * Runs `work` after the GPU work queued before it when this worker uses WebGPU. onnxruntime's WebGPU
   * provider keeps one device per process, and runs on two threads at once corrupt its command stream
   * ("CommandEncoder is already finished", then a segfault, seen on an H200): so the runs' threads take
   * turns, which costs little, since they share one GPU anyway. On other providers, runs go in parallel.
   */
  private async onDevice<T>(work: () => Promise<T>): Promise<T> {
    if (!(this.options.providers ?? []).includes('webgpu')) return work();
    return this.deviceTurns.run(work);
  }

  /** Stops taking batches, lets those in flight finish, then closes the model and the server. */
  async drain(): Promise<void> {
    this.draining = true;
    markDraining(this.health);
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await this.closeRuns();
    this.servedHealth.close();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    if (this.ownHealth) this.health.close();
    this.options.logger.info({ address: this.address }, 'worker drained');
  }

  /** Stops at once (tests, fatal errors). */
  async close(): Promise<void> {
    this.health.readiness.unmetBecause(DRAIN_CONDITION, 'it has stopped');
    this.servedHealth.close();
    this.server.forceShutdown();
    if (this.ownHealth) this.health.close();
    await this.closeRuns();
  }

  private async closeRuns(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    const pools = [...this.runs.values()].map((run) => run.pool);
    this.runs.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}

function refusal(code: grpc.status, details: string): ServiceError {
  return { code, details, metadata: new grpc.Metadata() };
}

/** An admission's refusal with its own status; any other error of a stream or setup is malformed input. */
function asRefusal(error: unknown): ServiceError {
  return error instanceof AdmissionRefusal ? refusal(error.status, error.message) : refusal(grpc.status.INVALID_ARGUMENT, (error as Error).message);
}
