/**
 * The worker service of proto/worker.proto as a grpc-js service definition, with protobufjs doing the
 * (de)serialisation. Coordinator and worker both build their ends from this one definition.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { FrameError, type Frame } from './tensor-frames.js';
import { messageCodec, TO_OBJECT, workerType } from './worker-proto.js';

export { messageCodec } from './worker-proto.js';

/**
 * The worker service's protocol version. Raise it whenever a message or the meaning of a command
 * changes: a coordinator and a worker of different versions refuse each other at Hello. 1: bodies as
 * JSON in string fields; 2: every command, result and setup a message of worker.proto; 3: snapshots
 * by name under a run's scope (RunSetup.snapshot_scope), never a path on the worker's machine; 4: scores
 * may carry the guidance reward's embedding (ScoredId.embedding) when the setup asks for it
 * (RunSetup.score_embeddings): a worker of protocol 3 would skip the flag and send none, and the
 * search would fail for want of them, so the two refuse each other at Hello instead.
 */
export const WORKER_PROTOCOL_VERSION = 4;

export interface HelloRequest {
  readonly protocolVersion: number;
  readonly expectedModelBuild: string;
}
export interface HelloReply {
  readonly protocolVersion: number;
  readonly model: string;
  readonly modelBuild: string;
  readonly description: string;
  readonly role: WorkerRole;
}

/** What a worker serves: everything, denoising and decoding only, or rewards only. */
export type WorkerRole = 'both' | 'denoise' | 'reward';
export interface SetupRequest {
  readonly runId: string;
  /** A RunSetup message as a plain object (proto/setup-message.ts makes and reads it). */
  readonly setup: Record<string, unknown> | null;
}
export interface SetupReply {
  readonly description: string;
}
export type HealthRequest = Record<string, never>;
export interface HealthReply {
  readonly status: 'serving' | 'draining' | 'idle';
  readonly inFlight: number;
  readonly busyMs: number;
  /** Of busyMs, the time inside the model runtime's session.run (the rest is the worker's own work). */
  readonly modelMs: number;
  readonly batches: number;
  /**
   * NFEs done by this worker's commands since it started (all runs): only grows, and moves while a
   * batch runs. Undefined from a worker of an earlier release, which does not count them.
   */
  readonly nfe?: number;
}

const codec = <T>(name: string) => messageCodec<T>(workerType(name));

const frameType: protobuf.Type = workerType('Frame');
/**
 * Frames are encoded as they are (plain objects with numeric enums, no fromObject pass over a large
 * body) and keep their chunk bytes as views (no copy): the assembler copies them into aligned tensors.
 */
const frameCodec = {
  serialize: (frame: Frame) => Buffer.from(frameType.encode(frame as unknown as protobuf.Message).finish()),
  deserialize: (bytes: Buffer): Frame => {
    const message = frameType.toObject(frameType.decode(bytes), TO_OBJECT) as { body?: string; header?: Frame & object; chunk?: unknown; end?: unknown };
    switch (message.body) {
      case 'header':
        return { header: message.header } as unknown as Frame;
      case 'chunk':
        return { chunk: message.chunk } as Frame;
      case 'end':
        return { end: {} };
      default:
        throw new FrameError(`a Frame with no member this side knows (${bytes.length} bytes; a peer of another release?)`);
    }
  },
};

function unary<Req, Res>(method: string, request: string, response: string) {
  const req = codec<Req>(request);
  const res = codec<Res>(response);
  return {
    path: `/evosearch.worker.v1.Worker/${method}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: req.serialize,
    requestDeserialize: req.deserialize,
    responseSerialize: res.serialize,
    responseDeserialize: res.deserialize,
  };
}

export const workerService = {
  hello: unary<HelloRequest, HelloReply>('Hello', 'HelloRequest', 'HelloReply'),
  setup: unary<SetupRequest, SetupReply>('Setup', 'SetupRequest', 'SetupReply'),
  health: unary<HealthRequest, HealthReply>('Health', 'HealthRequest', 'HealthReply'),
  execute: {
    path: '/evosearch.worker.v1.Worker/Execute',
    requestStream: true,
    responseStream: true,
    requestSerialize: frameCodec.serialize,
    requestDeserialize: frameCodec.deserialize,
    responseSerialize: frameCodec.serialize,
    responseDeserialize: frameCodec.deserialize,
  },
} satisfies ServiceDefinition;
