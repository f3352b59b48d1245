/**
 * Cluster events on NATS: plain JSON messages a dashboard can subscribe to. Subjects:
 *
 *   evosearch.events.worker.joined    {id, address, model, build, at}           a worker registered
 *   evosearch.events.worker.left      {id, address, at}                         a worker drained and deregistered
 *   evosearch.events.worker.lost      {id, address, lastHeartbeat, at}          a worker's heartbeat went stale
 *   evosearch.events.run.<runId>.started   {runId, method, model, budgetNfe, workers, at}
 *   evosearch.events.run.<runId>.round     {runId, round, label, best, nfe, plannedNfe, roundMs, at}
 *   evosearch.events.run.<runId>.workers   {runId, added, workers, at}                workers joined the run
 *   evosearch.events.run.<runId>.finished  {runId, best, spent, wallMs, at}
 *   evosearch.events.run.<runId>.failed    {runId, error, at}
 *
 * Subscribe to `evosearch.events.>` for everything, or `evosearch.events.run.<runId>.*` for one run.
 */
import type { NatsConnection } from '@nats-io/transport-node';

export const EVENTS_PREFIX = 'evosearch.events';

export type WorkerEvent = 'joined' | 'left' | 'lost';
export type RunEvent = 'started' | 'round' | 'workers' | 'finished' | 'failed';

export const workerSubject = (event: WorkerEvent) => `${EVENTS_PREFIX}.worker.${event}`;
export const runSubject = (runId: string, event: RunEvent | '*') => `${EVENTS_PREFIX}.run.${runId}.${event}`;

export function publishEvent(nc: NatsConnection, subject: string, payload: Record<string, unknown>): void {
  nc.publish(subject, JSON.stringify({ ...payload, at: new Date().toISOString() }));
}
