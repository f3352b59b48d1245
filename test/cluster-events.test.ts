import { WireError } from '../proto/wire-error.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NatsConnection } from '@nats-io/transport-node';
import { publishRunEvent, publishWorkerEvent } from '../cluster/events.js';
import { runEventFromJson, workerEventFromJson } from '../proto/coordinator-messages.js';

/** A NATS connection that keeps what is published (the subjects and messages, not the network: cluster-nats.test.ts has that). */
function recorder(): { nc: NatsConnection; published: { subject: string; data: Record<string, unknown> }[] } {
  const published: { subject: string; data: Record<string, unknown> }[] = [];
  const nc = { publish: (subject: string, data: string) => published.push({ subject, data: JSON.parse(data) as Record<string, unknown> }) } as unknown as NatsConnection;
  return { nc, published };
}

describe('cluster events: each subject carries its coordinator.proto message as proto3 JSON', () => {
  it('a run event goes out as the RunEvent of its subject', () => {
    const { nc, published } = recorder();
    publishRunEvent(nc, 'r1', 'round', { round: 0, label: 'init', nfe: 250, plannedNfe: 990, roundMs: 3 });
    publishRunEvent(nc, 'r1', 'finished', { best: { candidate: 2, reward: -0.5, metrics: {} }, spent: { nfe: 990, forwardPasses: 990, decodes: 4, rewardCalls: 4 }, wallMs: 77, workers: [] });
    assert.deepEqual(published.map((p) => p.subject), ['evosearch.events.run.r1.round', 'evosearch.events.run.r1.finished']);
    const [round, finished] = published.map((p) => p.data);
    // proto3 JSON: round 0 and the unset best are left out, uint64 are strings.
    assert.deepEqual({ ...round, at: undefined }, { runId: 'r1', at: undefined, round: { label: 'init', nfe: '250', plannedNfe: '990', roundMs: 3 } });
    assert.ok(!Number.isNaN(Date.parse(String(round!.at))));
    const event = runEventFromJson(round);
    assert.ok(event.event === 'round' && event.payload.round === 0 && event.payload.best === undefined);
    const done = runEventFromJson(finished);
    assert.ok(done.event === 'finished');
    assert.deepEqual(done.payload, { best: { candidate: 2, reward: -0.5, metrics: {} }, spent: { nfe: 990, forwardPasses: 990, decodes: 4, rewardCalls: 4 }, wallMs: 77, workers: [] });
  });

  it('a worker event is its message, fields named as the .proto names them', () => {
    const { nc, published } = recorder();
    publishWorkerEvent(nc, 'lost', { id: 'w1', address: '10.0.0.2:50051', lastHeartbeat: '2026-12-01T09:59:50.000Z' });
    publishWorkerEvent(nc, 'left', { id: 'w2', address: '10.0.0.3:50051' });
    assert.deepEqual(published.map((p) => p.subject), ['evosearch.events.worker.lost', 'evosearch.events.worker.left']);
    assert.deepEqual(Object.keys(published[0]!.data).sort(), ['address', 'at', 'id', 'lastHeartbeat']);
    assert.equal(workerEventFromJson('left', published[1]!.data).id, 'w2');
  });

  it('refuses, publishing nothing, a payload that does not fit its subject\'s message, naming the field', () => {
    const { nc, published } = recorder();
    // As a JavaScript caller (or a cast) might hand them over: the check is at run time too.
    const refuses = (publish: () => void, field: RegExp) => assert.throws(publish, (e: unknown) => e instanceof WireError && field.test(e.field));
    refuses(() => publishRunEvent(nc, 'r1', 'round', { round: 0, label: 'init', nfe: -1, plannedNfe: 990, roundMs: 3 }), /^RunEvent\.round\.nfe$/);
    refuses(() => publishRunEvent(nc, 'r1', 'workers', { added: ['a:1'], workers: ['a:1'], extra: 1 } as never), /^RunEvent\.workers\.extra$/);
    refuses(() => publishRunEvent(nc, 'r1', 'dashboard' as never, {} as never), /^RunEvent\.event$/);
    refuses(() => publishWorkerEvent(nc, 'joined', { id: 'w1', address: 'a:1', model: 'm' } as never), /^WorkerJoined\.build$/);
    assert.deepEqual(published, []);
  });
});
