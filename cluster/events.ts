/**
 * Cluster events on NATS, for dashboards and other processes: each is the proto3 JSON of its message
 * in proto/coordinator.proto (lowerCamelCase names, uint64 as strings, a field at its default, such as
 * round 0, left out), so a subscriber in any language decodes it with the .proto's JSON parser (read
 * by hand, an absent field is its default). Subjects:
 *
 *   evosearch.events.worker.joined          WorkerJoined {id, address, model, build, at}   a worker registered
 *   evosearch.events.worker.left            WorkerLeft {id, address, at}                   a worker drained and deregistered
 *   evosearch.events.worker.lost            WorkerLost {id, address, lastHeartbeat, at}    a worker's heartbeat went stale
 *   evosearch.events.run.<runId>.started    RunEvent {runId, at, started: RunStarted}
 *   evosearch.events.run.<runId>.round      RunEvent {runId, at, round: RoundFinished}
 *   evosearch.events.run.<runId>.workers    RunEvent {runId, at, workers: WorkersJoined}   workers joined the run
 *   evosearch.events.run.<runId>.finished   RunEvent {runId, at, finished: RunFinished}
 *   evosearch.events.run.<runId>.failed     RunEvent {runId, at, failed: RunFailed}
 *
 * Subscribe to `evosearch.events.>` for everything, or `evosearch.events.run.<runId>.*` for one run.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { runEventOf, runEventToJson, workerEventToJson, type RunEventPayloads, type WorkerEventPayloads } from '../proto/coordinator-messages.js';

export const EVENTS_PREFIX = 'evosearch.events';

export type WorkerEvent = 'joined' | 'left' | 'lost';
/** The run events NATS carries (the coordinator service's Watch stream has these and a few of its own). */
export type RunEvent = 'started' | 'round' | 'workers' | 'finished' | 'failed';

/** What each subject carries, as the project's code holds it (`at` is added when it is published). */
export type WorkerEventPayload<K extends WorkerEvent> = Omit<WorkerEventPayloads[K], 'at'>;
export type RunEventPayload<K extends RunEvent> = RunEventPayloads[K];

/** Told each of a run's events with its typed payload (a run's publisher, the coordinator's listener). */
export type RunEventListener = <K extends RunEvent>(event: K, payload: RunEventPayload<K>) => void;

export const workerSubject = (event: WorkerEvent) => `${EVENTS_PREFIX}.worker.${event}`;
export const runSubject = (runId: string, event: RunEvent | '*') => `${EVENTS_PREFIX}.run.${runId}.${event}`;


export function publishWorkerEvent<K extends WorkerEvent>(nc: NatsConnection, event: K, payload: WorkerEventPayload<K>): void {
  nc.publish(workerSubject(event), JSON.stringify(workerEventToJson(event, { ...payload, at: new Date().toISOString() } as WorkerEventPayloads[K])));
}

/**
 * Publishes one of a run's events on its subject as its RunEvent message. The payload is checked
 * against the message on the way (runEventOf): a field that does not fit is a WireError naming it, and
 * nothing is published.
 */
export function publishRunEvent<K extends RunEvent>(nc: NatsConnection, runId: string, event: K, payload: RunEventPayload<K>): void {
  const message = runEventOf(event, payload, runId, new Date().toISOString());
  nc.publish(runSubject(runId, event), JSON.stringify(runEventToJson(message)));
}
