/**
 * The coordinator service of proto/coordinator.proto as a grpc-js service definition (protobufjs for
 * the messages), shared by the coordinator and its clients. Its messages travel as wire objects;
 * proto/coordinator-messages.ts turns them into the project's values and back.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { messageCodec } from './worker-service.js';
import { coordinatorType, type WireObject } from './coordinator-messages.js';
import { runFileNameProblem } from './run-file-name.js';
import { WireError } from './wire-error.js';

export { COORDINATOR_PROTO_FILE } from './coordinator-messages.js';

/**
 * The coordinator service's protocol version, its own (the worker service has WORKER_PROTOCOL_VERSION in
 * proto/worker-service.ts). Raise it when a message's meaning changes or a field goes; adding a field
 * needs no raise (each side skips fields it does not know). Submit and Resume carry it, and a coordinator
 * refuses another version. 2: typed messages (RunConfig, RunEvent, RunPlanSummary) instead of JSON strings.
 */
export const COORDINATOR_PROTOCOL_VERSION = 2;

export interface SubmitRequest {
  readonly protocolVersion: number;
  /** A RunConfig (runConfigToWire); absent: an empty configuration. */
  readonly config?: WireObject | null;
}
export interface SubmitReply {
  readonly runId: string;
  /** A RunPlanSummary (planSummaryToWire). */
  readonly plan: WireObject | null;
}
export interface ResumeRequest {
  readonly protocolVersion: number;
  readonly runId: string;
}
export interface WatchRequest {
  readonly runId: string;
}
/** A RunEvent (runEventToWire). */
export type RunEventMessage = WireObject;
export interface CancelRequest {
  readonly runId: string;
}
export interface CancelReply {
  readonly state: string;
}
export type RunState = 'queued' | 'running' | 'finished' | 'failed' | 'cancelled' | 'interrupted';
export interface RunSummary {
  readonly runId: string;
  readonly state: RunState;
  readonly model: string;
  readonly method: string;
  readonly prompt: string;
  readonly submittedAt: string;
  readonly bestReward: number;
  readonly hasBest: boolean;
}
export interface ListReply {
  readonly runs: readonly RunSummary[];
}
export interface FilesRequest {
  readonly runId: string;
}
export interface FileChunk {
  readonly name: string;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly last: boolean;
}

/**
 * A request whose bytes are not its message. The service's handlers refuse it with INVALID_ARGUMENT
 * (a deserializer that threw would make grpc-js answer INTERNAL, as if the coordinator had failed).
 */
export class UndecodableRequest {
  constructor(readonly message: string, readonly reason: string) {}
}

const codec = <T>(name: string) => messageCodec<T>(coordinatorType(name));

function method<Req, Res>(name: string, request: string, response: string, responseStream: boolean) {
  const req = codec<Req>(request);
  const res = codec<Res>(response);
  return {
    path: `/evosearch.coordinator.v1.Coordinator/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: req.serialize,
    requestDeserialize: (bytes: Buffer): Req | UndecodableRequest => {
      try {
        return req.deserialize(bytes);
      } catch (error) {
        return new UndecodableRequest(request, (error as Error).message);
      }
    },
    responseSerialize: res.serialize,
    responseDeserialize: res.deserialize,
  };
}

/**
 * A FileChunk as a client reads it: one whose name is not a file of the run folder (proto/run-file-name.ts)
 * fails the call, so no download writes outside its folder whatever the coordinator sends.
 */
function fileChunk(bytes: Buffer): FileChunk {
  const chunk = codec<FileChunk>('FileChunk').deserialize(bytes);
  const problem = runFileNameProblem(chunk.name);
  if (problem !== null) throw new WireError('FileChunk.name', problem);
  return chunk;
}

export const coordinatorService = {
  submit: method<SubmitRequest, SubmitReply>('Submit', 'SubmitRequest', 'SubmitReply', false),
  watch: method<WatchRequest, RunEventMessage>('Watch', 'WatchRequest', 'RunEvent', true),
  cancel: method<CancelRequest, CancelReply>('Cancel', 'CancelRequest', 'CancelReply', false),
  list: method<Record<string, never>, ListReply>('List', 'ListRequest', 'ListReply', false),
  files: { ...method<FilesRequest, FileChunk>('Files', 'FilesRequest', 'FileChunk', true), responseDeserialize: fileChunk },
  resume: method<ResumeRequest, SubmitReply>('Resume', 'ResumeRequest', 'SubmitReply', false),
} satisfies ServiceDefinition;
