/**
 * A process registered in NATS is ready only while its registration holds: while its connection is
 * up and its heartbeats are stored. A lost connection makes it not ready at once (coordinators would
 * no longer find it, and it would not hear the cluster); it is ready again at the first heartbeat
 * stored after, which is also when coordinators can see it again.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Readiness } from '../metrics/readiness.js';
import type { WorkerRegistration } from './worker-registry.js';

export const NATS_CONDITION = 'nats';

/** Marks `condition` met now (the registration has just been stored) and follows it; the function returned stops following. */
export function followRegistration(nc: NatsConnection, registration: WorkerRegistration, readiness: Readiness, condition = NATS_CONDITION): () => void {
  let following = true;
  readiness.met(condition);
  const stopHeartbeats = registration.onHeartbeat((error) => {
    if (error === null) readiness.met(condition);
    else readiness.unmetBecause(condition, `its heartbeat was not stored in NATS (${error.message})`);
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (!following) return;
      if (status.type === 'disconnect') readiness.unmetBecause(condition, 'its NATS connection is lost (reconnecting)');
    }
  })();
  return () => {
    following = false;
    stopHeartbeats();
  };
}
