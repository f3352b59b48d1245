/**
 * A client of the coordinator service: submit a run, follow its events, cancel it, list runs, and
 * download a finished run's files.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { writeFileDurable } from '../../files/durable-write.js';
import { join } from 'node:path';
import type { RunConfigInput } from '../../config/run-config-schema.js';
import { coordinatorService, type CancelReply, type FileChunk, type ListReply, type RunEventMessage, type SubmitReply } from '../../proto/coordinator-service.js';
import { PROTOCOL_VERSION } from '../../proto/worker-service.js';
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

export interface ClientEvent {
  readonly event: string;
  readonly payload: Record<string, unknown>;
}

export class CoordinatorClient {
  private readonly client: grpc.Client;

  constructor(readonly address: string, private readonly deadlineMs = 60_000, protocolVersion = PROTOCOL_VERSION) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), coordinatorClientOptions);
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

  submit(config: RunConfigInput): Promise<SubmitReply> {
    return this.unary(coordinatorService.submit, { protocolVersion: this.protocolVersion, configJson: JSON.stringify(config) });
  }

  /** Asks the coordinator to continue a run it served that did not finish; watch it afterwards. */
  resume(runId: string): Promise<SubmitReply> {
    return this.unary(coordinatorService.resume, { protocolVersion: this.protocolVersion, runId });
  }

  cancel(runId: string): Promise<CancelReply> {
    return this.unary(coordinatorService.cancel, { runId });
  }

  list(): Promise<ListReply> {
    return this.unary(coordinatorService.list, {});
  }

  /** Calls `onEvent` for each event of the run until it ends; resolves with the last one. */
  watch(runId: string, onEvent: (event: ClientEvent) => void): Promise<ClientEvent> {
    const m = coordinatorService.watch;
    return new Promise((resolve, reject) => {
      let last: ClientEvent | null = null;
      const call = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { runId }, new grpc.Metadata(), {});
      call.on('data', (message: RunEventMessage) => {
        last = { event: message.event, payload: JSON.parse(message.payloadJson) as Record<string, unknown> };
        onEvent(last);
      });
      call.on('error', (error: grpc.ServiceError) => reject(this.wrap(error)));
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
