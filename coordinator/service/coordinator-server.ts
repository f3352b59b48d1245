/**
 * The coordinator as a service (proto/coordinator.proto): clients submit runs, watch their events,
 * cancel them, list them and fetch their files. Each run is the same engine as `evosearch run`,
 * over the cluster's workers (found through NATS). The service registers itself in NATS so clients
 * (`evosearch run --cluster`) find it.
 */
import * as grpc from '@grpc/grpc-js';
import { hostname } from 'node:os';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { advertisedAddress } from '../../cluster/advertised-address.js';
import { closeNats, connectNats } from '../../cluster/nats-connection.js';
import { COORDINATORS_BUCKET, WorkerRegistration } from '../../cluster/worker-registry.js';
import { planRun } from '../../config/plan-run.js';
import { ConfigError, parseRunConfig, type RunPlan } from '../../config/resolve-run-config.js';
import { coordinatorService, type CancelReply, type CancelRequest, type FileChunk, type FilesRequest, type ListReply, type RunEventMessage, type RunState, type RunSummary, type SubmitReply, type SubmitRequest, type WatchRequest } from '../../proto/coordinator-service.js';
import { CHUNK_BYTES } from '../../proto/tensor-frames.js';
import { PROTOCOL_VERSION } from '../../proto/worker-service.js';
import { RunCancelledError } from '../engine/run-search.js';
import { runEmbedded } from '../run/embedded-run.js';
import { randomUUID } from 'node:crypto';

export interface CoordinatorOptions {
  readonly nats: string;
  /** Where run folders go: <runsDir>/<runId>/. */
  readonly runsDir: string;
  readonly logger: Logger;
}

interface Run {
  readonly id: string;
  readonly plan: RunPlan;
  readonly folder: string;
  readonly submittedAt: string;
  state: RunState;
  best: number | null;
  readonly events: RunEventMessage[];
  readonly listeners: Set<(event: RunEventMessage) => void>;
  readonly abort: AbortController;
}

const TERMINAL = new Set<RunState>(['finished', 'failed', 'cancelled']);
/** Why a run is aborted when its coordinator stops (the run stays resumable). */
const STOPPING = 'the coordinator is stopping';

export class CoordinatorServer {
  private readonly runs = new Map<string, Run>();

  private constructor(
    private readonly server: grpc.Server,
    private readonly options: CoordinatorOptions,
    private readonly nc: NatsConnection,
    private registration: WorkerRegistration | null,
    readonly address: string,
  ) {}

  static async start(listen: string, options: CoordinatorOptions, advertise?: string): Promise<CoordinatorServer> {
    const nc = await connectNats(options.nats, 'evosearch coordinator');
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const address = advertisedAddress(`${listen.slice(0, listen.lastIndexOf(':'))}:${port}`, advertise);
    const coordinator = new CoordinatorServer(server, options, nc, null, address);
    server.addService(coordinatorService, {
      submit: (call: grpc.ServerUnaryCall<SubmitRequest, SubmitReply>, done: grpc.sendUnaryData<SubmitReply>) => void coordinator.submit(call.request).then((r) => done(null, r), (e: grpc.ServiceError) => done(e)),
      watch: (call: grpc.ServerWritableStream<WatchRequest, RunEventMessage>) => coordinator.watch(call),
      cancel: (call: grpc.ServerUnaryCall<CancelRequest, CancelReply>, done: grpc.sendUnaryData<CancelReply>) => coordinator.cancel(call.request, done),
      list: (_call: grpc.ServerUnaryCall<unknown, ListReply>, done: grpc.sendUnaryData<ListReply>) => done(null, { runs: [...coordinator.runs.values()].map(summary) }),
      files: (call: grpc.ServerWritableStream<FilesRequest, FileChunk>) => void coordinator.files(call),
    });
    coordinator.registration = await WorkerRegistration.register(nc, { id: `coordinator-${hostname()}-${process.pid}`, address, model: '', build: '' }, undefined, COORDINATORS_BUCKET);
    options.logger.info({ address, nats: options.nats, runsDir: options.runsDir }, 'coordinator serving');
    return coordinator;
  }

  private async submit(request: SubmitRequest): Promise<SubmitReply> {
    if (request.protocolVersion !== PROTOCOL_VERSION) throw status(grpc.status.FAILED_PRECONDITION, `this coordinator speaks protocol version ${PROTOCOL_VERSION}, the client ${request.protocolVersion}`);
    let plan: RunPlan;
    try {
      const input = parseRunConfig(JSON.parse(request.configJson), 'submitted run');
      plan = await planRun({ ...input, cluster: this.options.nats, workersAt: undefined }, 'submitted run');
    } catch (error) {
      if (error instanceof ConfigError || error instanceof SyntaxError) throw status(grpc.status.INVALID_ARGUMENT, (error as Error).message);
      throw status(grpc.status.INTERNAL, (error as Error).message);
    }
    const id = randomUUID();
    const folder = join(this.options.runsDir, id);
    await mkdir(folder, { recursive: true });
    const run: Run = { id, plan, folder, submittedAt: new Date().toISOString(), state: 'queued', best: null, events: [], listeners: new Set(), abort: new AbortController() };
    this.runs.set(id, run);
    void this.execute(run);
    return { runId: id, planJson: JSON.stringify(plan) };
  }

  private emit(run: Run, event: string, payload: Record<string, unknown>): void {
    const message = { event, payloadJson: JSON.stringify({ runId: run.id, ...payload, at: new Date().toISOString() }) };
    run.events.push(message);
    for (const listener of run.listeners) listener(message);
  }

  private async execute(run: Run): Promise<void> {
    const logger = pino({ level: 'info', base: { runId: run.id } }, pino.destination({ dest: join(run.folder, 'run.log'), sync: true }));
    run.state = 'running';
    this.emit(run, 'started', { method: run.plan.method, model: run.plan.model, prompt: run.plan.prompt, budgetNfe: run.plan.budgetNfe, plannedNfe: run.plan.planned[run.plan.method].nfe });
    try {
      const { record } = await runEmbedded(run.plan, {
        folder: run.folder,
        logger,
        runId: run.id,
        signal: run.abort.signal,
        onRound: (r) => {
          run.best = r.progress.best?.reward ?? run.best;
          this.emit(run, 'round', { round: r.round, label: r.label, best: r.progress.best?.reward ?? null, nfe: r.counters.nfe, plannedNfe: run.plan.planned[run.plan.method].nfe, roundMs: Math.round(r.roundMs) });
        },
      });
      run.best = record.best?.reward ?? null;
      run.state = 'finished';
      this.emit(run, 'finished', { best: record.best, spent: record.spent, wallMs: record.wallMs, workers: record.workers });
    } catch (error) {
      run.state = error instanceof RunCancelledError ? 'cancelled' : 'failed';
      // A run this coordinator stopped (not one a client cancelled) has a complete checkpoint in its
      // folder: say how to continue it, so the client can tell its user.
      const stopped = run.state === 'cancelled' && run.abort.signal.reason === STOPPING;
      this.emit(run, run.state, { error: (error as Error).message, ...(stopped ? { folder: run.folder, resume: `evosearch resume ${run.folder}` } : {}) });
      this.options.logger.warn({ runId: run.id, error: (error as Error).message }, `run ${run.state}`);
    } finally {
      logger.flush();
    }
  }

  private watch(call: grpc.ServerWritableStream<WatchRequest, RunEventMessage>): void {
    const run = this.runs.get(call.request.runId);
    if (run === undefined) {
      call.emit('error', status(grpc.status.NOT_FOUND, `no run ${call.request.runId} on this coordinator`));
      return;
    }
    for (const event of run.events) call.write(event);
    if (TERMINAL.has(run.state)) {
      call.end();
      return;
    }
    const listener = (event: RunEventMessage) => {
      call.write(event);
      if (TERMINAL.has(run.state)) {
        run.listeners.delete(listener);
        call.end();
      }
    };
    run.listeners.add(listener);
    call.on('cancelled', () => run.listeners.delete(listener));
  }

  private cancel(request: CancelRequest, done: grpc.sendUnaryData<CancelReply>): void {
    const run = this.runs.get(request.runId);
    if (run === undefined) return done(status(grpc.status.NOT_FOUND, `no run ${request.runId} on this coordinator`));
    if (!TERMINAL.has(run.state)) run.abort.abort('cancelled by a client');
    done(null, { state: run.state });
  }

  private async files(call: grpc.ServerWritableStream<FilesRequest, FileChunk>): Promise<void> {
    const run = this.runs.get(call.request.runId);
    if (run === undefined) return void call.emit('error', status(grpc.status.NOT_FOUND, `no run ${call.request.runId} on this coordinator`));
    if (run.state !== 'finished') return void call.emit('error', status(grpc.status.FAILED_PRECONDITION, `run ${run.id} is ${run.state}; its files come when it has finished`));
    for (const entry of await readdir(run.folder, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const bytes = await readFile(join(run.folder, entry.name));
      for (let offset = 0; offset === 0 || offset < bytes.length; offset += CHUNK_BYTES) {
        const data = bytes.subarray(offset, Math.min(bytes.length, offset + CHUNK_BYTES));
        if (!call.write({ name: entry.name, offset, data, last: offset + CHUNK_BYTES >= bytes.length })) await new Promise((r) => call.once('drain', r));
      }
    }
    call.end();
  }

  /** Deregisters, cancels what runs, and stops. */
  async stop(): Promise<void> {
    await this.registration?.deregister();
    for (const run of this.runs.values()) if (!TERMINAL.has(run.state)) run.abort.abort(STOPPING);
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    await closeNats(this.nc);
  }
}

function summary(run: Run): RunSummary {
  return { runId: run.id, state: run.state, model: run.plan.model, method: run.plan.method, prompt: run.plan.prompt ?? '', submittedAt: run.submittedAt, bestReward: run.best ?? 0, hasBest: run.best !== null };
}

function status(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}
