/**
 * The coordinator as a service (proto/coordinator.proto): clients submit runs, watch their events,
 * cancel them, list them and fetch their files. Each run is the same engine as `evosearch run`,
 * over the cluster's workers (found through NATS). The service registers itself in NATS so clients
 * (`evosearch run --cluster`) find it.
 */
import { EvoSearchError } from '../../errors/evosearch-error.js';
import { getHeapStatistics } from 'node:v8';
import { Admission, type AdmissionLimits } from './admission.js';
import { estimatePlanMemory, HEAP_SHARE } from '../../config/limits.js';
import { callerOf, PLAINTEXT_LOOPBACK, refusalUnlessRole, serverCredentials, type TransportSecurity } from '../../proto/transport-security.js';
import type { PeerIdentity } from '../../security/peer-roles.js';
import * as grpc from '@grpc/grpc-js';
import { WireError } from '../../proto/wire-error.js';
import { hostname } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { advertisedAddress } from '../../cluster/advertised-address.js';
import { closeNats, connectNats } from '../../cluster/nats-connection.js';
import { COORDINATORS_BUCKET, WorkerRegistration } from '../../cluster/worker-registry.js';
import { planRun } from '../../config/plan-run.js';
import { ConfigError, parseRunConfig, type RunPlan } from '../../config/resolve-run-config.js';
import { COORDINATOR_PROTOCOL_VERSION, coordinatorService, UndecodableRequest, type CancelReply, type CancelRequest, type FileChunk, type FilesRequest, type ListReply, type ResumeRequest, type RunEventMessage, type RunState, type RunSummary, type SubmitReply, type SubmitRequest, type WatchRequest } from '../../proto/coordinator-service.js';
import { planSummaryToWire, runConfigFromWire, runEventOf, runEventToWire, type PlanSummary, type RunEventKind, type RunEventPayloads, type TypedRunEvent } from '../../proto/coordinator-messages.js';
import { CHUNK_BYTES } from '../../proto/tensor-frames.js';
import { coordinatorServerOptions } from '../../proto/grpc-limits.js';
import { RunCancelledError } from '../engine/run-search.js';
import { runSearchToFolder } from '../run/run-search-to-folder.js';
import { LOCK_FILE, RunFolderLock } from '../run/run-folder-lock.js';
import { readCheckpoint, type LoadedCheckpoint } from '../checkpoint/checkpoint-store.js';
import { isDurableTemporary } from '../../files/durable-write.js';
import { servableRunFiles, UnservableRunFileError } from './run-files.js';
import { appendServedEvent, EVENTS_FILE, loadServedRuns, saveServedRun, SERVED_FILE } from './run-index.js';
import { randomUUID } from 'node:crypto';
import { BUNDLED_MODELS, ModelRoots, OutsideModelRootsError } from '../../worker/bundles/model-roots.js';
import { ProcessHealth } from '../../metrics/process-health.js';
import type { Registry } from '../../metrics/registry.js';
import { CoordinatorMetrics, RUN_STATES, type CoordinatorCounts, type RunStateName } from '../../metrics/coordinator-metrics.js';
import { serveHealth, type ServedHealth } from '../../proto/health-service.js';
import { meteredService, serviceNameOf } from '../../proto/metered-service.js';
import { followRegistration, NATS_CONDITION } from '../../cluster/registration-readiness.js';
import { workersWanted } from './workers-wanted.js';
import { startCoordinatorView, type CoordinatorView, type CoordinatorViewOptions, type ServedRuns } from './coordinator-view.js';

export interface CoordinatorOptions {
  readonly nats: string;
  /** Where run folders go: <runsDir>/<runId>/. */
  readonly runsDir: string;
  readonly logger: Logger;
  /**
   * How clients reach this coordinator and it reaches workers (default plaintext, loopback only). Under
   * mTLS a client sees, watches, cancels, resumes and downloads only the runs it submitted, an admin all.
   */
  readonly transport?: TransportSecurity;
  /** How many runs start at once, wait, and one client may hold (admission.ts; defaults DEFAULT_ADMISSION). */
  readonly admission?: Partial<AdmissionLimits>;
  /**
   * The folders a submitted run's model may be read from (`--model-root`; default the repository's
   * models/bundles): a client names a bundle, and the coordinator reads its manifest to plan the run.
   */
  readonly modelRoots?: readonly string[];
  /**
   * What its health service (and the caller's /readyz) says: it must wait for SERVING_CONDITION and
   * NATS_CONDITION, which the server meets (coordinatorHealth makes one). Default: one of its own.
   */
  readonly health?: ProcessHealth;
  /** Where its metrics go (metrics/coordinator-metrics.ts); none when absent. */
  readonly metrics?: Registry;
  /** Serve the live view (`--view-listen`, coordinator-view.ts): same callers and rules as this API. */
  readonly view?: CoordinatorViewOptions;
}

/** The readiness condition a coordinator meets once its gRPC service is up. */
export const SERVING_CONDITION = 'serving';
/** A new ProcessHealth for a coordinator: waiting for its service and its NATS registration. */
export function coordinatorHealth(): ProcessHealth {
  return new ProcessHealth({ [SERVING_CONDITION]: 'its gRPC service is not up yet', [NATS_CONDITION]: 'it is not registered in NATS yet' });
}

/** At most 4 runs search at once, 64 wait, 16 per client, within 85 % of this process's heap. */
export function defaultAdmission(): AdmissionLimits {
  return { maxRunning: 4, maxWaiting: 64, maxPerClient: 16, heapBytes: getHeapStatistics().heap_size_limit * HEAP_SHARE };
}

interface Run {
  readonly id: string;
  readonly plan: RunPlan;
  readonly folder: string;
  readonly submittedAt: string;
  state: RunState;
  best: number | null;
  /** Who submitted it (run-index.ts ServedRun.owner). */
  readonly owner: string | null;
  /** Its plan's coordinator heap estimate, bytes (config/limits.ts), for admission. */
  readonly heap: number;
  readonly events: TypedRunEvent[];
  readonly listeners: Set<(event: TypedRunEvent) => void>;
  /** The attempt in progress (a resume starts a new one). */
  abort: AbortController;
  /** Writes to the run's index entry and event log, in order. */
  saved: Promise<void>;
  /** The attempt in progress or the last one, settled once its end is in the index. */
  attempt: Promise<void>;
}

/**
 * Whether `caller` may see `run`: plaintext callers (loopback: this machine's users) and admins see
 * every run; a client sees the runs its certificate's name submitted.
 */
export function mayUse(run: { readonly owner: string | null }, caller: PeerIdentity | null): boolean {
  return caller === null || caller.role === 'admin' || run.owner === caller.name;
}

const TERMINAL = new Set<RunState>(['finished', 'failed', 'cancelled', 'interrupted']);
/** A run in these states may be continued from its checkpoint. */
const RESUMABLE = new Set<RunState>(['failed', 'cancelled', 'interrupted']);
/** Files of the service's own in a run folder: not the run's, so not sent to clients. */
const SERVICE_FILES = new Set([SERVED_FILE, EVENTS_FILE, LOCK_FILE]);
/** Why a run is aborted when its coordinator stops (the run stays resumable). */
const STOPPING = 'the coordinator is stopping';

export class CoordinatorServer {
  private readonly runs = new Map<string, Run>();
  private readonly admission: Admission<Run>;
  private readonly modelRoots: ModelRoots;
  private readonly metrics: CoordinatorMetrics | null;
  /** Stops the readiness following the NATS registration. */
  private unfollow: () => void = () => undefined;
  /** The live view, when served (options.view). */
  view: CoordinatorView | null = null;

  private constructor(
    private readonly server: grpc.Server,
    private readonly options: CoordinatorOptions,
    private readonly nc: NatsConnection,
    private registration: WorkerRegistration | null,
    readonly address: string,
    readonly health: ProcessHealth,
    private readonly servedHealth: ServedHealth,
  ) {
    this.admission = new Admission({ ...defaultAdmission(), ...options.admission });
    this.modelRoots = new ModelRoots(options.modelRoots !== undefined && options.modelRoots.length > 0 ? options.modelRoots.map((root) => resolve(root)) : [BUNDLED_MODELS], 'coordinator');
    this.metrics = options.metrics === undefined ? null : new CoordinatorMetrics(options.metrics, () => this.counts());
  }

  /** What its metrics read at each scrape. */
  private counts(): CoordinatorCounts {
    const runsByState = Object.fromEntries(RUN_STATES.map((state) => [state, 0])) as Record<RunStateName, number>;
    let wanted = 0;
    for (const run of this.runs.values()) {
      runsByState[run.state] += 1;
      if (run.state === 'queued' || run.state === 'running') wanted += workersWanted(run.plan);
    }
    return { runsByState, queueDepth: this.admission.counts.waiting, workersWanted: wanted };
  }

  static async start(listen: string, options: CoordinatorOptions, advertise?: string): Promise<CoordinatorServer> {
    const nc = await connectNats(options.nats, 'evosearch coordinator');
    const transport = options.transport ?? PLAINTEXT_LOOPBACK;
    const credentials = serverCredentials(transport, listen);
    const server = new grpc.Server(coordinatorServerOptions);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, credentials, (e, p) => (e ? reject(e) : resolve(p))));
    const address = advertisedAddress(`${listen.slice(0, listen.lastIndexOf(':'))}:${port}`, advertise);
    // Health answers from the moment the port is bound: NOT_SERVING until the service and its registration are up.
    const health = options.health ?? coordinatorHealth();
    const coordinator = new CoordinatorServer(server, options, nc, null, address, health, serveHealth(server, health, serviceNameOf(coordinatorService)));
    // The runs served before a restart: their folders are the index (coordinator/service/run-index.ts).
    for (const loaded of await loadServedRuns(options.runsDir, (folder, why) => options.logger.warn({ folder }, `not a run this coordinator can serve: ${why}`))) {
      for (const problem of loaded.eventProblems) options.logger.warn({ folder: loaded.folder }, `an event of the run's log not served: ${problem}`);
      const run: Run = { id: loaded.runId, plan: loaded.plan, folder: loaded.folder, submittedAt: loaded.submittedAt, state: loaded.state, best: loaded.best, owner: loaded.owner, heap: planHeap(loaded.plan), events: loaded.events, listeners: new Set(), abort: new AbortController(), saved: Promise.resolve(), attempt: Promise.resolve() };
      coordinator.runs.set(run.id, run);
      if (loaded.cutOff) {
        // Its watchers (and those who come later) learn how it ended and how to go on.
        coordinator.emit(run, 'interrupted', { error: 'its coordinator ended without stopping it (killed, crashed or lost); the coordinator has restarted', folder: run.folder, resume: coordinator.resumeCommand(run) });
        coordinator.save(run);
        await run.saved;
      }
    }
    // Clients and admins only; under mTLS each call knows its caller (who owns which run).
    const refused = (call: Parameters<typeof refusalUnlessRole>[1]) => refusalUnlessRole(transport, call, 'coordinator', ['client', 'admin']);
    const caller = (call: Parameters<typeof callerOf>[0]) => callerOf(call);
    // Every message of the service is counted (metrics/coordinator-metrics.ts: peer "clients").
    server.addService(meteredService(coordinatorService, coordinator.metrics?.clientWire), {
      submit: (call: grpc.ServerUnaryCall<SubmitRequest | UndecodableRequest, SubmitReply>, done: grpc.sendUnaryData<SubmitReply>) => { const refusedNow = refused(call); if (refusedNow !== null) return done(refusedNow); const who = caller(call); return void Promise.resolve(call.request).then(decoded).then((r) => coordinator.submit(r, who)).then((r) => done(null, r), (e: grpc.ServiceError) => done(e)); },
      watch: (call: grpc.ServerWritableStream<WatchRequest | UndecodableRequest, RunEventMessage>) => { const refusedNow = refused(call); if (refusedNow !== null) return void call.emit('error', refusedNow); const who = caller(call); return coordinator.watch(call, who); },
      cancel: (call: grpc.ServerUnaryCall<CancelRequest | UndecodableRequest, CancelReply>, done: grpc.sendUnaryData<CancelReply>) => { const refusedNow = refused(call); if (refusedNow !== null) return done(refusedNow); const who = caller(call); return call.request instanceof UndecodableRequest ? done(refusal(call.request)) : coordinator.cancel(call.request, who, done); },
      list: (call: grpc.ServerUnaryCall<unknown, ListReply>, done: grpc.sendUnaryData<ListReply>) => { const refusedNow = refused(call); if (refusedNow !== null) return done(refusedNow); const who = caller(call); return done(null, { runs: [...coordinator.runs.values()].filter((run) => mayUse(run, who)).map(summary) }); },
      files: (call: grpc.ServerWritableStream<FilesRequest | UndecodableRequest, FileChunk>) => { const refusedNow = refused(call); if (refusedNow !== null) return void call.emit('error', refusedNow); const who = caller(call); return void coordinator.files(call, who); },
      resume: (call: grpc.ServerUnaryCall<ResumeRequest | UndecodableRequest, SubmitReply>, done: grpc.sendUnaryData<SubmitReply>) => { const refusedNow = refused(call); if (refusedNow !== null) return done(refusedNow); const who = caller(call); return void Promise.resolve(call.request).then(decoded).then((r) => coordinator.resume(r, who)).then((r) => done(null, r), (e: grpc.ServiceError) => done(e)); },
    });
    health.readiness.met(SERVING_CONDITION);
    if (options.view !== undefined) {
      try {
        coordinator.view = await startCoordinatorView(options.view, coordinator.servedRuns(), transport, options.logger);
      } catch (error) {
        server.forceShutdown();
        await closeNats(nc);
        throw error;
      }
    }
    coordinator.registration = await WorkerRegistration.register(nc, { id: `coordinator-${hostname()}-${process.pid}`, address, model: '', build: '' }, undefined, COORDINATORS_BUCKET);
    coordinator.unfollow = followRegistration(nc, coordinator.registration, health.readiness);
    options.logger.info({ address, nats: options.nats, runsDir: options.runsDir, knownRuns: coordinator.runs.size }, 'coordinator serving');
    return coordinator;
  }

  private async submit(request: SubmitRequest, caller: PeerIdentity | null): Promise<SubmitReply> {
    checkVersion(request.protocolVersion);
    let plan: RunPlan;
    try {
      // The message's fields as the run configuration, then its schema: errors name the field either way.
      const input = parseRunConfig(runConfigFromWire(request.config ?? {}), 'submitted run');
      // Judged on its path before anything is read: a client may name only the bundles this coordinator offers.
      // Anything but the analytic model is a path, whether it exists or not: the refusal tells nothing of this machine's files.
      if (input.model !== undefined && !input.model.startsWith('analytic:')) this.modelRoots.confine(input.model.replace(/^bundle:/, ''), 'config.model');
      plan = await planRun({ ...input, cluster: this.options.nats, workersAt: undefined }, 'submitted run');
    } catch (error) {
      if (error instanceof ConfigError || error instanceof WireError || error instanceof OutsideModelRootsError) throw status(grpc.status.INVALID_ARGUMENT, (error as Error).message);
      // A plan past this machine's limits (memory, the record's size): refused before any work.
      if (error instanceof EvoSearchError && error.code === 'limit') throw status(grpc.status.RESOURCE_EXHAUSTED, error.message);
      throw status(grpc.status.INTERNAL, (error as Error).message);
    }
    const id = randomUUID();
    const folder = join(this.options.runsDir, id);
    const run: Run = { id, plan, folder, submittedAt: new Date().toISOString(), state: 'queued', best: null, owner: caller?.name ?? null, heap: planHeap(plan), events: [], listeners: new Set(), abort: new AbortController(), saved: Promise.resolve(), attempt: Promise.resolve() };
    // Past a limit the run is refused here, before its folder or any work exists. It takes its place
    // at once (no await between the check and the queue, so a flood cannot slip past the limit), and
    // starts only once its folder and index entry are written.
    const refused = this.admission.refusal(run);
    if (refused !== null) throw status(grpc.status.RESOURCE_EXHAUSTED, `run not accepted: ${refused}`);
    const prepared = (async () => {
      await mkdir(folder, { recursive: true });
      // In the index before the client hears of it: a restarted coordinator knows every run it accepted.
      this.save(run);
      await run.saved;
    })();
    this.runs.set(id, run);
    this.admission.enqueue(run, () => (run.attempt = prepared.then(() => this.execute(run))));
    try {
      await prepared;
    } catch (error) {
      this.runs.delete(id);
      this.admission.withdraw(run);
      throw status(grpc.status.INTERNAL, `run not accepted: its folder ${folder} cannot be made: ${(error as Error).message}`);
    }
    return { runId: id, plan: planSummaryToWire(planSummary(plan)) };
  }

  /** Continues a run that did not finish from its last complete checkpoint, under its id. */
  private async resume(request: ResumeRequest, caller: PeerIdentity | null): Promise<SubmitReply> {
    checkVersion(request.protocolVersion);
    const run = this.find(request.runId, caller);
    if (run === undefined) throw status(grpc.status.NOT_FOUND, `no run ${request.runId} on this coordinator (runs dir ${this.options.runsDir})`);
    if (!RESUMABLE.has(run.state)) throw status(grpc.status.FAILED_PRECONDITION, `run ${run.id} is ${run.state}${run.state === 'finished' ? ': nothing to resume; fetch its files' : ': it is not stopped'}`);
    let checkpoint: LoadedCheckpoint;
    try {
      checkpoint = readCheckpoint(run.folder);
    } catch (error) {
      throw status(grpc.status.FAILED_PRECONDITION, `run ${run.id} has no usable checkpoint: ${(error as Error).message}`);
    }
    if (checkpoint.warning !== null) this.options.logger.warn({ runId: run.id }, checkpoint.warning);
    const refused = this.admission.refusal(run);
    if (refused !== null) throw status(grpc.status.RESOURCE_EXHAUSTED, `run ${run.id} not resumed: ${refused}`);
    run.abort = new AbortController();
    run.state = 'queued';
    this.save(run);
    await run.saved;
    this.admission.enqueue(run, () => (run.attempt = this.execute(run, checkpoint)));
    return { runId: run.id, plan: planSummaryToWire(planSummary(run.plan)) };
  }

  /** A run that leaves the queue without starting. */
  private endWaiting(run: Run, state: 'cancelled', why: string): void {
    run.state = state;
    this.emit(run, state, { error: why });
    this.save(run);
  }

  /** The command that continues `run` from anywhere in the cluster (see cli/resume-command.ts). */
  private resumeCommand(run: Run): string {
    return `evosearch resume ${run.id} --cluster ${this.options.nats}`;
  }

  /** Queues a write of the run's index entry (its state now). */
  private save(run: Run): void {
    const entry = { runId: run.id, plan: run.plan, submittedAt: run.submittedAt, state: run.state, best: run.best, owner: run.owner };
    run.saved = run.saved.then(() => saveServedRun(run.folder, entry)).catch((error: Error) => this.options.logger.error({ runId: run.id, error: error.message }, 'run index entry not written'));
  }

  /** An event of the service's own (resumed, finished, failed, cancelled, interrupted), checked against its message. */
  private emit<K extends RunEventKind>(run: Run, event: K, payload: RunEventPayloads[K]): void {
    this.record(run, runEventOf(event, payload, run.id, new Date().toISOString()));
  }

  /** Keeps the event for later watchers, logs it to the run folder and sends it to the watchers now. */
  private record(run: Run, event: TypedRunEvent): void {
    run.events.push(event);
    run.saved = run.saved.then(() => appendServedEvent(run.folder, event)).catch((error: Error) => this.options.logger.error({ runId: run.id, error: error.message }, 'run event not logged'));
    for (const listener of run.listeners) listener(event);
  }

  private async execute(run: Run, resume?: LoadedCheckpoint): Promise<void> {
    const logger = pino({ level: 'info', base: { runId: run.id } }, pino.destination({ dest: join(run.folder, 'run.log'), sync: true, append: true }));
    let lock: RunFolderLock | null = null;
    try {
      // One writer per run folder: a `evosearch resume` of the same folder on this machine is refused.
      lock = RunFolderLock.acquire(run.folder);
      run.state = 'running';
      this.save(run);
      if (resume !== undefined) this.emit(run, 'resumed', { afterRound: resume.manifest.rounds, nfe: resume.manifest.spent.nfe });
      const { record } = await runSearchToFolder(run.plan, {
        folder: run.folder,
        logger,
        runId: run.id,
        ...(this.options.transport !== undefined ? { transport: this.options.transport } : {}),
        signal: run.abort.signal,
        ...(resume !== undefined ? { resume } : {}),
        ...(this.metrics !== null ? { meter: this.metrics.runs } : {}),
        // The run's own events, as NATS carries them: started, round, workers (joined mid-run); the
        // service sends its own finished (with the record's workers) and failure events.
        onEvent: (event, payload) => {
          if (event !== 'started' && event !== 'round' && event !== 'workers') return;
          const typed = runEventOf(event, payload, run.id, new Date().toISOString());
          if (typed.event === 'round') run.best = typed.payload.best ?? run.best;
          this.record(run, typed);
        },
      });
      run.best = record.best?.reward ?? null;
      run.state = 'finished';
      this.emit(run, 'finished', { ...(record.best !== null ? { best: { metrics: {}, ...record.best } } : {}), spent: record.spent, wallMs: record.wallMs, workers: record.workers });
    } catch (error) {
      // A run this coordinator stopped (not one a client cancelled) has a complete checkpoint in its
      // folder: say how to continue it, so the client can tell its user.
      const stopped = error instanceof RunCancelledError && run.abort.signal.reason === STOPPING;
      const message = (error as Error).message;
      if (stopped) {
        run.state = 'interrupted';
        this.emit(run, 'interrupted', { error: message, folder: run.folder, resume: this.resumeCommand(run) });
      } else {
        run.state = error instanceof RunCancelledError ? 'cancelled' : 'failed';
        this.emit(run, run.state, { error: message });
      }
      this.options.logger.warn({ runId: run.id, error: (error as Error).message }, `run ${run.state}`);
    } finally {
      this.save(run);
      await run.saved;
      lock?.release();
      logger.flush();
    }
  }

  /** The run, if `caller` may see it; another client's run is not found, as if it did not exist. */
  private find(runId: string, caller: PeerIdentity | null): Run | undefined {
    const run = this.runs.get(runId);
    return run !== undefined && mayUse(run, caller) ? run : undefined;
  }

  private watch(call: grpc.ServerWritableStream<WatchRequest | UndecodableRequest, RunEventMessage>, caller: PeerIdentity | null): void {
    if (call.request instanceof UndecodableRequest) return void call.emit('error', refusal(call.request));
    const run = this.find(call.request.runId, caller);
    if (run === undefined) {
      call.emit('error', status(grpc.status.NOT_FOUND, `no run ${call.request.runId} on this coordinator`));
      return;
    }
    for (const event of run.events) call.write(runEventToWire(event));
    if (TERMINAL.has(run.state)) {
      call.end();
      return;
    }
    const listener = (event: TypedRunEvent) => {
      call.write(runEventToWire(event));
      if (TERMINAL.has(run.state)) {
        run.listeners.delete(listener);
        call.end();
      }
    };
    run.listeners.add(listener);
    call.on('cancelled', () => run.listeners.delete(listener));
  }

  private cancel(request: CancelRequest, caller: PeerIdentity | null, done: grpc.sendUnaryData<CancelReply>): void {
    const run = this.find(request.runId, caller);
    if (run === undefined) return done(status(grpc.status.NOT_FOUND, `no run ${request.runId} on this coordinator`));
    done(null, { state: this.stopRun(run) });
  }

  /** A client's cancel (gRPC or the view): a waiting run ends now, a running one between rounds. Its state after. */
  private stopRun(run: Run): RunState {
    if (this.admission.withdraw(run)) this.endWaiting(run, 'cancelled', 'cancelled by a client before it started');
    else if (!TERMINAL.has(run.state)) run.abort.abort('cancelled by a client');
    return run.state;
  }

  /** What the live view reads of this coordinator's runs, and the rules it keeps (coordinator-view.ts). */
  private servedRuns(): ServedRuns {
    return { all: () => this.runs.values(), get: (id) => this.runs.get(id), mayUse, cancel: (run) => this.stopRun(run as Run), skipFile: (name) => SERVICE_FILES.has(name) || isDurableTemporary(name) };
  }

  private async files(call: grpc.ServerWritableStream<FilesRequest | UndecodableRequest, FileChunk>, caller: PeerIdentity | null): Promise<void> {
    if (call.request instanceof UndecodableRequest) return void call.emit('error', refusal(call.request));
    const run = this.find(call.request.runId, caller);
    if (run === undefined) return void call.emit('error', status(grpc.status.NOT_FOUND, `no run ${call.request.runId} on this coordinator`));
    if (run.state !== 'finished') return void call.emit('error', status(grpc.status.FAILED_PRECONDITION, `run ${run.id} is ${run.state}; its files come when it has finished`));
    try {
      // The run's files only: not the index's, and not a durable write's temporary (renamed away any
      // moment); never through a symbolic link (coordinator/service/run-files.ts).
      for await (const { name, bytes } of servableRunFiles(run.folder, (name) => SERVICE_FILES.has(name) || isDurableTemporary(name))) {
        for (let offset = 0; offset === 0 || offset < bytes.length; offset += CHUNK_BYTES) {
          const data = bytes.subarray(offset, Math.min(bytes.length, offset + CHUNK_BYTES));
          if (!call.write({ name, offset, data, last: offset + CHUNK_BYTES >= bytes.length })) await new Promise((r) => call.once('drain', r));
        }
      }
      call.end();
    } catch (error) {
      if (error instanceof UnservableRunFileError) {
        this.options.logger.warn({ runId: run.id, folder: run.folder }, error.message);
        return void call.emit('error', status(grpc.status.FAILED_PRECONDITION, `run ${run.id}: ${error.message}`));
      }
      // A folder that cannot be read fails this call, never the coordinator.
      call.emit('error', status(grpc.status.INTERNAL, `run ${run.id}'s files in ${run.folder}: ${(error as Error).message}`));
    }
  }

  /** Deregisters, cancels what runs, and stops. */
  async stop(): Promise<void> {
    // Not ready from the first moment: probes and watchers see it before it stops answering.
    this.health.readiness.unmetBecause('stop', 'it is stopping');
    this.unfollow();
    await this.registration?.deregister();
    // Runs still waiting never started: nothing to continue, so they end as cancelled, saying why.
    for (const run of this.runs.values()) if (this.admission.withdraw(run)) this.endWaiting(run, 'cancelled', 'the coordinator stopped before the run started; submit it again');
    const active = [...this.runs.values()].filter((run) => !TERMINAL.has(run.state));
    for (const run of active) run.abort.abort(STOPPING);
    // Each stopped run's last state and event reach its index entry before the process goes.
    await Promise.all(active.map((run) => run.attempt));
    // After the runs' last events, so a page watching one sees how it ended.
    await this.view?.close();
    this.servedHealth.close();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    await closeNats(this.nc);
    if (this.options.health === undefined) this.health.close();
  }
}

/** The coordinator heap a plan will need (its lineage, evaluations and record). */
function planHeap(plan: RunPlan): number {
  return estimatePlanMemory(plan).coordinatorHeap;
}

function summary(run: Run): RunSummary {
  return { runId: run.id, state: run.state, model: run.plan.model, method: run.plan.method, prompt: run.plan.prompt ?? '', submittedAt: run.submittedAt, bestReward: run.best ?? 0, hasBest: run.best !== null };
}

/** What a client is shown of its submitted or resumed run (the whole plan is the run folder's config.json). */
function planSummary(plan: RunPlan): PlanSummary {
  return { model: plan.model, method: plan.method, preset: plan.preset, seed: plan.seed, budgetNfe: plan.budgetNfe, plannedNfe: plan.planned[plan.method].nfe, ...(plan.prompt !== undefined ? { prompt: plan.prompt } : {}) };
}

function checkVersion(clientVersion: number): void {
  if (clientVersion !== COORDINATOR_PROTOCOL_VERSION) throw status(grpc.status.FAILED_PRECONDITION, `this coordinator speaks coordinator protocol version ${COORDINATOR_PROTOCOL_VERSION}, the client ${clientVersion}`);
}

/** The request, or INVALID_ARGUMENT when its bytes were not its message. */
function decoded<T>(request: T | UndecodableRequest): T {
  if (request instanceof UndecodableRequest) throw refusal(request);
  return request;
}

function refusal(request: UndecodableRequest): grpc.ServiceError {
  return status(grpc.status.INVALID_ARGUMENT, `not a ${request.message} message: ${request.reason}`);
}

function status(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}
