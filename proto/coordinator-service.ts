/**
 * The coordinator service of proto/coordinator.proto as a grpc-js service definition (protobufjs for
 * the messages), shared by the coordinator and its clients.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { messageCodec } from './worker-service.js';

export const COORDINATOR_PROTO_FILE = fileURLToPath(new URL('../../proto/coordinator.proto', import.meta.url));

export interface SubmitRequest {
  readonly protocolVersion: number;
  readonly configJson: string;
}
export interface SubmitReply {
  readonly runId: string;
  readonly planJson: string;
}
export interface ResumeRequest {
  readonly protocolVersion: number;
  readonly runId: string;
}
export interface WatchRequest {
  readonly runId: string;
}
export interface RunEventMessage {
  readonly event: string;
  readonly payloadJson: string;
}
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

const root = protobuf.loadSync(COORDINATOR_PROTO_FILE);
const codec = <T>(name: string) => messageCodec<T>(root.lookupType(`evosearch.coordinator.v1.${name}`));

function method<Req, Res>(name: string, request: string, response: string, responseStream: boolean) {
  const req = codec<Req>(request);
  const res = codec<Res>(response);
  return {
    path: `/evosearch.coordinator.v1.Coordinator/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: req.serialize,
    requestDeserialize: req.deserialize,
    responseSerialize: res.serialize,
    responseDeserialize: res.deserialize,
  };
}

export const coordinatorService = {
  submit: method<SubmitRequest, SubmitReply>('Submit', 'SubmitRequest', 'SubmitReply', false),
  watch: method<WatchRequest, RunEventMessage>('Watch', 'WatchRequest', 'RunEvent', true),
  cancel: method<CancelRequest, CancelReply>('Cancel', 'CancelRequest', 'CancelReply', false),
  list: method<Record<string, never>, ListReply>('List', 'ListRequest', 'ListReply', false),
  files: method<FilesRequest, FileChunk>('Files', 'FilesRequest', 'FileChunk', true),
  resume: method<ResumeRequest, SubmitReply>('Resume', 'ResumeRequest', 'SubmitReply', false),
} satisfies ServiceDefinition;
