/**
 * A test's client of the standard gRPC health service (grpc-health-check's definition of
 * grpc.health.v1.Health): Check once, or Watch and wait for a status to arrive.
 */
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { withTimeout } from '../../async/timeouts-and-turns.js';
import { PEER_ROLES } from '../../security/peer-roles.js';
import { channelCredentials, channelOptions, PLAINTEXT_LOOPBACK, type TransportSecurity } from '../../proto/transport-security.js';

type Status = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
interface HealthStub extends grpc.Client {
  check(request: { service: string }, options: grpc.CallOptions, done: (error: grpc.ServiceError | null, reply?: { status: Status }) => void): grpc.ClientUnaryCall;
  watch(request: { service: string }): grpc.ClientReadableStream<{ status: Status }>;
}
const HealthClient = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health') as unknown as new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => HealthStub;

export function healthClient(address: string, transport: TransportSecurity = PLAINTEXT_LOOPBACK): HealthStub {
  return new HealthClient(address, channelCredentials(transport, address, PEER_ROLES), channelOptions(transport));
}

/** The status a Check answers, or the gRPC error's code name (NOT_FOUND, ...). */
export function checkHealth(client: HealthStub, service: string): Promise<string> {
  return new Promise((resolve) => client.check({ service }, { deadline: Date.now() + 10_000 }, (error, reply) => resolve(error ? grpc.status[error.code]! : reply!.status)));
}

export interface HealthWatch {
  /** Every status the stream has brought, in order. */
  readonly statuses: readonly Status[];
  /** Resolves once `status` arrives at index `from` or later (default: from the next one on). */
  seen(status: Status, what: string, from?: number): Promise<void>;
  /** Resolves with the stream's end status (its code) once it ends. */
  readonly ended: Promise<grpc.status>;
  cancel(): void;
}

export function watchHealth(client: HealthStub, service: string, timeoutMs = 30_000): HealthWatch {
  const statuses: Status[] = [];
  const waiting = new Set<() => void>();
  const call = client.watch({ service });
  call.on('data', (reply: { status: Status }) => {
    statuses.push(reply.status);
    for (const look of [...waiting]) look();
  });
  const ended = new Promise<grpc.status>((resolve) => {
    call.on('error', (error: grpc.ServiceError) => resolve(error.code));
    call.on('status', (status: grpc.StatusObject) => resolve(status.code));
  });
  return {
    statuses,
    seen(status, what, from = statuses.length) {
      return withTimeout(new Promise<void>((resolve) => {
        const look = () => {
          if (statuses.slice(from).includes(status)) {
            waiting.delete(look);
            resolve();
          }
        };
        waiting.add(look);
        look();
      }), timeoutMs, `${what} (the watch of '${service}' brought ${statuses.join(', ') || 'nothing'})`);
    },
    ended,
    cancel: () => call.cancel(),
  };
}
