/**
 * Asking a server's gRPC health service (proto/health-service.ts) once, as `evosearch health` does:
 * SERVING resolves; anything else is a HealthProbeError whose message says in one line what was found
 * (not serving and why, no such service name, unreachable, TLS refused) and whose code gives the exit
 * status (unavailable: 3, a wrong name or certificate: 2).
 */
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import { PEER_ROLES } from '../security/peer-roles.js';
import { diagnoseConnection } from './connection-diagnosis.js';
import { NOT_READY_REASONS } from './health-service.js';
import { channelCredentials, channelOptions, type TransportSecurity } from './transport-security.js';

export type ProbeFailure = 'not-serving' | 'unknown-service' | 'unreachable' | 'tls' | 'not-a-health-server';

export class HealthProbeError extends EvoSearchError {
  override readonly name = 'HealthProbeError';
  constructor(
    readonly failure: ProbeFailure,
    message: string,
  ) {
    super(message);
  }

  get code(): ErrorCode {
    return this.failure === 'unknown-service' || this.failure === 'tls' ? 'config' : 'unavailable';
  }
}

/** What a Check answered, in the names of health.proto. */
type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
const check = (healthService as unknown as grpc.ServiceDefinition).Check! as grpc.MethodDefinition<{ service: string }, { status: ServingStatus }>;

/** Resolves when `service` at `address` is SERVING; any server role may answer (a coordinator or a worker). */
export async function probeHealth(address: string, service: string, timeoutMs: number, transport: TransportSecurity): Promise<void> {
  const started = performance.now();
  const shown = service === '' ? address : `${address} (service '${service}')`;
  const client = new grpc.Client(address, channelCredentials(transport, address, PEER_ROLES), channelOptions(transport));
  let answer: ServingStatus;
  // grpc-js calls back before it emits the trailers' status (in the same tick): read them after the await.
  const trailers = { reasons: [] as string[] };
  try {
    answer = await new Promise((resolve, reject) => {
      const call = client.makeUnaryRequest(check.path, check.requestSerialize, check.responseDeserialize, { service }, new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (error, reply) => (error ? reject(error) : resolve(reply!.status)));
      call.on('status', (status: grpc.StatusObject) => (trailers.reasons = status.metadata.get(NOT_READY_REASONS).map(String)));
    });
  } catch (error) {
    const e = error as grpc.ServiceError;
    if (e.code === grpc.status.NOT_FOUND) throw new HealthProbeError('unknown-service', `health of ${shown}: no service of that name there (names: '' for the whole process, 'liveness', or its gRPC service's full name: evosearch.worker.v1.Worker, evosearch.coordinator.v1.Coordinator)`);
    if (e.code === grpc.status.UNIMPLEMENTED) throw new HealthProbeError('not-a-health-server', `health of ${shown}: it answers gRPC but serves no health service (not an evosearch server of this release?)`);
    if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) {
      const diagnosis = await diagnoseConnection(address, transport, Math.max(500, timeoutMs - (performance.now() - started)));
      if (diagnosis.kind === 'unreachable') throw new HealthProbeError('unreachable', `health of ${shown}: unreachable: ${diagnosis.detail}`);
      if (diagnosis.kind === 'tls') throw new HealthProbeError('tls', `health of ${shown}: TLS refused: ${diagnosis.detail}`);
      throw new HealthProbeError('unreachable', `health of ${shown}: no answer within ${timeoutMs} ms (${grpc.status[e.code]}: ${e.details}); ${diagnosis.detail}`);
    }
    throw new HealthProbeError('unreachable', `health of ${shown}: ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`);
  } finally {
    client.close();
  }
  if (answer !== 'SERVING') throw new HealthProbeError('not-serving', `health of ${shown}: ${answer}${trailers.reasons.length > 0 ? ` (${trailers.reasons.join('; ')})` : ''}`);
}
