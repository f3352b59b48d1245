/**
 * proto/worker.proto loaded once (with sampler.proto, which it imports), and the one way its messages
 * turn into bytes and back. Messages are plain objects here: protobufjs's camelCase field names,
 * numbers for uint64 (ids and counters stay far below 2^53) and for enums, a `kind`-style property
 * naming the member a oneof holds.
 */
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';

export const PROTO_FILE = fileURLToPath(new URL('../../proto/worker.proto', import.meta.url));

const PACKAGE = 'evosearch.worker.v1';

export const workerProtoRoot = protobuf.loadSync(PROTO_FILE);

export function workerType(name: string): protobuf.Type {
  return workerProtoRoot.lookupType(`${PACKAGE}.${name}`);
}

/** Enum values of worker.proto by name (`NOISE_PURPOSE_ROLLOUT` -> 2). */
export function workerEnum(name: string): Readonly<Record<string, number>> {
  return workerProtoRoot.lookupEnum(`${PACKAGE}.${name}`).values;
}

/**
 * How decoded messages become objects: every field present (proto3 defaults filled in, so a 0 that
 * was not sent reads 0), enums as numbers, each oneof's member named by its virtual property, and
 * proto3 `optional` fields absent when they were not sent.
 */
export const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, defaults: true, oneofs: true, arrays: true };

/** (De)serialisers of one message type, for grpc-js method definitions. */
export function messageCodec<T>(t: protobuf.Type): { serialize: (value: T) => Buffer; deserialize: (bytes: Buffer) => T } {
  return {
    serialize: (value: T) => Buffer.from(t.encode(t.fromObject(value as Record<string, unknown>)).finish()),
    deserialize: (bytes: Buffer) => t.toObject(t.decode(bytes), TO_OBJECT) as T,
  };
}
