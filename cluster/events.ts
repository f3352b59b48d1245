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
import { WireError } from '../proto/wire-error.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { fieldError, runEventOf, runEventToJson, workerEventToJson, type RunEventPayloads, type TypedRunEvent, type WorkerEventPayloads } from '../proto/coordinator-messages.js';

export const EVENTS_PREFIX = 'evosearch.events';

export type WorkerEvent = 'joined' | 'left' | 'lost';
/** The run events NATS carries (the coordinator service's Watch stream has these and a few of its own). */
export type RunEvent = 'started' | 'round' | 'workers' | 'finished' | 'failed';

/** What each subject carries, as the project's code holds it (`at` is added when it is published). */
export type WorkerEventPayload<K extends WorkerEvent> = Omit<WorkerEventPayloads[K], 'at'>;
export type RunEventPayload<K extends RunEvent> = RunEventPayloads[K];

export const workerSubject = (event: WorkerEvent) => `${EVENTS_PREFIX}.worker.${event}`;
export const runSubject = (runId: string, event: RunEvent | '*') => `${EVENTS_PREFIX}.run.${runId}.${event}`;

const WORKER_SUBJECT = new RegExp(`^${EVENTS_PREFIX.replace(/\./g, '\\.')}\\.worker\\.(joined|left|lost)$`);
const RUN_SUBJECT = new RegExp(`^${EVENTS_PREFIX.replace(/\./g, '\\.')}\\.run\\.(.+)\\.(started|round|workers|finished|failed)$`);

export function publishWorkerEvent<K extends WorkerEvent>(nc: NatsConnection, event: K, payload: WorkerEventPayload<K>): void {
  nc.publish(workerSubject(event), JSON.stringify(workerEventToJson(event, { ...payload, at: new Date().toISOString() } as WorkerEventPayloads[K])));
}

export function publishRunEvent(nc: NatsConnection, event: TypedRunEvent & { event: RunEvent }): void {
  nc.publish(runSubject(event.runId, event.event), JSON.stringify(runEventToJson(event)));
}

/**
 * Publishes a loose payload (`{ runId, ...fields }` on a run subject, the worker's fields on a worker
 * subject) as its subject's message: the payload is checked against the message on the way, and a
 * field that does not fit is a WireError naming it (nothing is published).
 */
export function publishEvent(nc: NatsConnection, subject: string, payload: Record<string, unknown>): void {
  const worker = WORKER_SUBJECT.exec(subject);
  if (worker !== null) return publishWorkerEvent(nc, worker[1] as WorkerEvent, payload as unknown as WorkerEventPayload<WorkerEvent>);
  const run = RUN_SUBJECT.exec(subject);
  if (run === null) throw fieldError('subject', `'${subject}' is not a cluster event subject (${EVENTS_PREFIX}.worker.<joined|left|lost> or ${EVENTS_PREFIX}.run.<id>.<started|round|workers|finished|failed>)`);
  const [, runId, kind] = run as unknown as [string, string, RunEvent];
  const { runId: named, ...fields } = payload;
  if (named !== undefined && named !== runId) throw fieldError('RunEvent.runId', `'${String(named)}', but the subject is run ${runId}'s`);
  publishRunEvent(nc, runEventOf(kind, fields, runId, new Date().toISOString()) as TypedRunEvent & { event: RunEvent });
}
