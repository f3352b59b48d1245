/**
 * A client of the coordinator service: submit a run, follow its events, cancel it, list runs, and
 * download a finished run's files. What the coordinator sends is checked as it arrives: a reply or an
 * event that does not fit its message (an event kind this client does not know, a missing payload) is
 * a CoordinatorError naming the field.
 */
import { channelCredentials, channelOptions, PLAINTEXT_LOOPBACK, type TransportSecurity } from '../../proto/transport-security.js';
import * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { writeFileDurable } from '../../files/durable-write.js';
import { dirname, join, resolve as resolvePath } from 'node:path';
import type { RunConfigInput } from '../../config/run-config-schema.js';
import { COORDINATOR_PROTOCOL_VERSION, coordinatorService, type CancelReply, type FileChunk, type ListReply, type RunEventMessage, type SubmitReply } from '../../proto/coordinator-service.js';
import { fieldError, planSummaryFromWire, runConfigToWire, runEventFromWire, type PlanSummary, type TypedRunEvent } from '../../proto/coordinator-messages.js';
import { coordinatorClientOptions } from '../../proto/grpc-limits.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

/** The coordinator refused or failed a request; `status` is the gRPC status. */
export class CoordinatorError extends EvoSearchError {
  override readonly name = 'CoordinatorError';
  constructor(readonly address: string, readonly status: grpc.status | undefined, detail: string, options?: { cause?: unknown }) {
    super(`coordinator ${address}: ${detail}`, options);
  }

  /** A run the coordinator refused as invalid is the user's input; anything else is the service. */
  get code(): ErrorCode {
    return this.status === grpc.status.INVALID_ARGUMENT ? 'config' : 'unavailable';
  }
}

/** A run the coordinator accepted (Submit) or continues (Resume). */
export interface AcceptedRun {
  readonly runId: string;
  readonly plan: PlanSummary;
}

export class CoordinatorClient {
  private readonly client: grpc.Client;

  /** `transport`: the client's certificates (mTLS: the server must show a coordinator certificate), or plaintext on loopback. */
  constructor(readonly address: string, transport: TransportSecurity = PLAINTEXT_LOOPBACK, private readonly deadlineMs = 60_000, protocolVersion = COORDINATOR_PROTOCOL_VERSION) {
    this.client = new grpc.Client(address, channelCredentials(transport, address, ['coordinator']), { ...coordinatorClientOptions, ...channelOptions(transport) });
    this.protocolVersion = protocolVersion;
  }
  private readonly protocolVersion: number;

  private unary<Req, Res>(m: { path: string; requestSerialize: (r: Req) => Buffer; responseDeserialize: (b: Buffer) => Res }, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, new grpc.Metadata(), { deadline: new Date(Date.now() + this.deadlineMs) }, (error, reply) => (error ? reject(this.wrap(error)) : resolve(reply!)));
    });
  }

  private wrap(error: grpc.ServiceError | Error): CoordinatorError {
    const e = error as Partial<grpc.ServiceError>;
    return new CoordinatorError(this.address, e.code, e.details ?? error.message, { cause: error });
  }

  /** A reply the coordinator sent that does not fit its message: the service's fault, not the user's. */
  private misfit(error: unknown, what: string): CoordinatorError {
    return new CoordinatorError(this.address, undefined, `${what} does not fit this client's coordinator.proto: ${(error as Error).message}`, { cause: error });
  }

  private accepted(reply: SubmitReply, what: string): AcceptedRun {
    try {
      if (reply.runId === '') throw fieldError('SubmitReply.runId', 'missing');
      if (reply.plan === null || reply.plan === undefined) throw fieldError('SubmitReply.plan', 'missing');
      return { runId: reply.runId, plan: planSummaryFromWire(reply.plan, 'SubmitReply.plan') };
    } catch (error) {
      throw this.misfit(error, what);
    }
  }

  /**
   * Submits a run. A configuration with a key RunConfig does not have, or a value of the wrong type, is
   * refused here (fieldError, a config error naming the field); the coordinator judges the rest.
   */
  async submit(config: RunConfigInput): Promise<AcceptedRun> {
    const request = { protocolVersion: this.protocolVersion, config: runConfigToWire(config) };
    return this.accepted(await this.unary(coordinatorService.submit, request), 'the Submit reply');
  }

  /** Asks the coordinator to continue a run it served that did not finish; watch it afterwards. */
  async resume(runId: string): Promise<AcceptedRun> {
    return this.accepted(await this.unary(coordinatorService.resume, { protocolVersion: this.protocolVersion, runId }), 'the Resume reply');
  }

  cancel(runId: string): Promise<CancelReply> {
    return this.unary(coordinatorService.cancel, { runId });
  }

  list(): Promise<ListReply> {
    return this.unary(coordinatorService.list, {});
  }

  /**
   * Calls `onEvent` for each event of the run until it ends; resolves with the last one. An event that
   * does not fit its message, or names another run, ends the watch with a CoordinatorError naming it.
   */
  watch(runId: string, onEvent: (event: TypedRunEvent) => void): Promise<TypedRunEvent> {
    const m = coordinatorService.watch;
    return new Promise((resolve, reject) => {
      let last: TypedRunEvent | null = null;
      let failed = false;
      const call = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { runId }, new grpc.Metadata(), {});
      call.on('data', (message: RunEventMessage) => {
        if (failed) return;
        let event: TypedRunEvent;
        try {
          event = runEventFromWire(message);
          if (event.runId !== runId) throw fieldError('RunEvent.runId', `'${event.runId}', but the watched run is '${runId}'`);
        } catch (error) {
          failed = true;
          reject(this.misfit(error, `an event of run ${runId}`));
          call.cancel();
          return;
        }
        last = event;
        onEvent(event);
      });
      call.on('error', (error: grpc.ServiceError) => {
        if (!failed) reject(this.wrap(error));
      });
      call.on('end', () => (last === null ? reject(new CoordinatorError(this.address, undefined, `the event stream of run ${runId} ended empty`)) : resolve(last)));
    });
  }

  /** Writes the finished run's files into `folder`; returns their names. */
  download(runId: string, folder: string): Promise<string[]> {
    const m = coordinatorService.files;
    return new Promise((resolve, reject) => {
      const parts = new Map<string, Buffer[]>();
      const call = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { runId }, new grpc.Metadata(), {});
      call.on('data', (chunk: FileChunk) => parts.set(chunk.name, [...(parts.get(chunk.name) ?? []), Buffer.from(chunk.data)]));
      call.on('error', (error: grpc.ServiceError) => reject(this.wrap(error)));
      call.on('end', () => {
        void (async () => {
          await mkdir(folder, { recursive: true });
          // The decoder refuses names that are not plain file names (proto/run-file-name.ts); this is the
          // second line: nothing is written anywhere but directly in `folder`.
          const inside = resolvePath(folder);
          for (const name of parts.keys()) if (dirname(resolvePath(inside, name)) !== inside) throw new CoordinatorError(this.address, undefined, `the coordinator sent a file named '${name}', which is not a file of the run folder: nothing was written`);
          for (const [name, chunks] of parts) await writeFileDurable(join(folder, name), Buffer.concat(chunks));
          resolve([...parts.keys()].sort());
        })().catch(reject);
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
