/**
 * A gRPC method or service definition whose (de)serializers tell a WireMeter the bytes of every
 * message: what a client serializes or a server answers is sent, what either side deserializes is
 * received. The same definition serves both ends, and each end calls only its own two functions.
 */
import type * as grpc from '@grpc/grpc-js';
import type { WireMeter } from '../metrics/wire-meter.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Method = grpc.MethodDefinition<any, any>;

export function meteredMethod<M extends Method>(method: M, meter: WireMeter | undefined): M {
  if (meter === undefined) return method;
  return {
    ...method,
    requestSerialize: (value: unknown) => {
      const bytes = method.requestSerialize(value);
      meter.sent(bytes.length);
      return bytes;
    },
    responseDeserialize: (bytes: Buffer) => {
      meter.received(bytes.length);
      return method.responseDeserialize(bytes);
    },
    responseSerialize: (value: unknown) => {
      const bytes = method.responseSerialize(value);
      meter.sent(bytes.length);
      return bytes;
    },
    requestDeserialize: (bytes: Buffer) => {
      meter.received(bytes.length);
      return method.requestDeserialize(bytes);
    },
  };
}

export function meteredService<S extends grpc.ServiceDefinition>(service: S, meter: WireMeter | undefined): S {
  if (meter === undefined) return service;
  return Object.fromEntries(Object.entries(service).map(([name, method]) => [name, meteredMethod(method, meter)])) as S;
}

/** The full name of the service a definition describes ("evosearch.worker.v1.Worker"), from its methods' paths. */
export function serviceNameOf(service: grpc.ServiceDefinition): string {
  const path = Object.values(service)[0]!.path;
  return path.slice(1, path.lastIndexOf('/'));
}
