/**
 * The standard gRPC health service (grpc.health.v1.Health: Check, Watch, and List), served by
 * grpc-health-check from the process's health (metrics/process-health.ts). Three names answer:
 *
 *   ""                      the whole process: SERVING when it is live and ready to take work
 *   <its service's name>    the same, under the name of the gRPC service it serves
 *                           (evosearch.worker.v1.Worker, evosearch.coordinator.v1.Coordinator)
 *   "liveness"              only whether its event loop responds: a process waiting for NATS is
 *                           alive, and restarting it would not help
 *
 * Any caller may ask. Under mTLS the handshake has already admitted only certificates of the cluster's
 * CA, whatever their role: probes run with whichever certificate their machine has. A Check that is
 * not SERVING carries the reasons in its trailing metadata (NOT_READY_REASONS), which `evosearch
 * health` prints.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { ProcessHealth } from '../metrics/process-health.js';

export const LIVENESS_SERVICE = 'liveness';
/** Trailing metadata of a Check answered NOT_SERVING: why, one reason per value. */
export const NOT_READY_REASONS = 'evosearch-not-ready';

export interface ServedHealth {
  /** Ends every Watch (a graceful shutdown waits for open calls, and a Watch never ends by itself). */
  close(): void;
}

export function serveHealth(server: grpc.Server, health: ProcessHealth, serviceName: string): ServedHealth {
  const implementation = new HealthImplementation();
  const shown = new Map<string, ServingStatus>();
  const show = (name: string, status: ServingStatus) => {
    // grpc-health-check tells every watcher at every setStatus; a watcher is to hear changes only.
    if (shown.get(name) === status) return;
    shown.set(name, status);
    implementation.setStatus(name, status);
  };
  const update = () => {
    const { live, ready } = health.status();
    show(LIVENESS_SERVICE, live ? 'SERVING' : 'NOT_SERVING');
    show('', ready ? 'SERVING' : 'NOT_SERVING');
    show(serviceName, ready ? 'SERVING' : 'NOT_SERVING');
  };
  update();
  const stopListening = health.onChange(update);
  const watches = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  implementation.addToServer({
    addService: (service, handlers) => {
      const check = handlers.check as grpc.handleUnaryCall<{ service: string }, unknown>;
      const watch = handlers.watch as grpc.handleServerStreamingCall<unknown, unknown>;
      server.addService(service as unknown as grpc.ServiceDefinition, {
        ...handlers,
        check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, done: grpc.sendUnaryData<unknown>) => {
          // Brought up to date at the moment of asking: a liveness change is otherwise seen only at the liveness timer's tick.
          update();
          check(call, (error, value) => done(error, value, reasonsOf(health)));
        },
        watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
          watches.add(call);
          call.once('cancelled', () => watches.delete(call));
          watch(call);
        },
      });
    },
  });
  return {
    close: () => {
      stopListening();
      for (const call of watches) call.end();
      watches.clear();
    },
  };
}

/** The reasons as metadata values: printable ASCII only (what a header may carry), each cut short. */
function reasonsOf(health: ProcessHealth): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const reason of health.status().reasons) metadata.add(NOT_READY_REASONS, reason.replace(/[^\x20-\x7e]/g, '?').slice(0, 300));
  return metadata;
}
