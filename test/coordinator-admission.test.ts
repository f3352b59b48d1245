/**
 * The coordinator's admission (coordinator/service/admission.ts): the queue's rules on their own, and a
 * real coordinator under a flood: runs past the limits refused at submission with the limit named, the
 * accepted ones all finishing, a plan too large for the machine refused before any work, and the
 * service answering all along.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Admission } from '../coordinator/service/admission.js';
import { CoordinatorClient, CoordinatorError } from '../coordinator/service/coordinator-client.js';
import { startCoordinator } from './support/coordinator-process.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

describe('admission: the queue on its own', () => {
  const run = (id: string, owner: string | null = null, heap = 1) => ({ id, owner, heap });

  it('starts runs in order while a slot is free and their heap fits, holds the rest, refuses past the limits', async () => {
    const admission = new Admission<ReturnType<typeof run>>({ maxRunning: 2, maxWaiting: 2, maxPerClient: 3, heapBytes: 10 });
    const started: string[] = [];
    const finish = new Map<string, () => void>();
    const take = (r: ReturnType<typeof run>) => {
      assert.equal(admission.refusal(r), null, `${r.id} refused`);
      admission.enqueue(r, () => new Promise<void>((resolve) => (started.push(r.id), finish.set(r.id, resolve))));
    };
    take(run('a', 'alice', 6));
    take(run('b', 'bob', 6)); // does not fit beside a: waits
    take(run('c', 'bob', 1)); // in order: waits behind b
    assert.deepEqual(started, ['a']);
    assert.deepEqual(admission.counts, { running: 1, waiting: 2 });
    assert.match(admission.refusal(run('d', 'carol'))!, /2 runs are waiting already, the most this coordinator queues \(--max-queued raises it\)/);
    assert.match(admission.refusal(run('e', 'x', 11))!, /more than all runs together may take/);
    finish.get('a')!();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(started, ['a', 'b', 'c'], 'b and c fit together once a is done');
    assert.match(new Admission({ maxRunning: 1, maxWaiting: 9, maxPerClient: 2, heapBytes: 10 }).refusal(run('z', 'bob')) ?? 'none', /none/);
    const perClient = new Admission<ReturnType<typeof run>>({ maxRunning: 1, maxWaiting: 9, maxPerClient: 2, heapBytes: 10 });
    perClient.enqueue(run('p1', 'bob'), () => new Promise(() => undefined));
    perClient.enqueue(run('p2', 'bob'), () => new Promise(() => undefined));
    assert.match(perClient.refusal(run('p3', 'bob'))!, /client 'bob' already has 2 runs waiting or running, the most one client may \(--max-runs-per-client raises it\)/);
    assert.equal(perClient.refusal(run('q1', 'alice')), null, 'another client is not held back by bob');
    assert.equal(perClient.withdraw(run('p2', 'bob')), false, 'only the very run withdraws');
  });
});

describe('admission on a real coordinator: a flood of submissions', () => {
  let nats: NatsServer;
  let coordinator: ChildProcess;
  let address: string;
  let dir: string;
  const workers: WorkerProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'coordinator-admission-'));
    workers.push(await startWorker('analytic:gmm', ['--nats', nats.url]));
    ({ child: coordinator, address } = await startCoordinator(nats.url, join(dir, 'served'), ['--max-running', '1', '--max-queued', '3']));
  });
  after(async () => {
    coordinator?.kill('SIGTERM');
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('20 submissions at once: 4 taken (1 running, 3 waiting), 16 refused naming the limit; every taken one finishes', async () => {
    const client = new CoordinatorClient(address);
    try {
      const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => client.submit({ budgetNfe: 2000, seed: i })));
      const taken = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.runId] : []));
      const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as CoordinatorError] : []));
      assert.equal(taken.length, 4, refused.map((e) => e.message).join('\n'));
      assert.ok(refused.every((e) => e.status === grpc.status.RESOURCE_EXHAUSTED && /runs are waiting already, the most this coordinator queues \(--max-queued raises it\)/.test(e.message)), refused.map((e) => e.message).join('\n'));
      // A plan past this machine's memory is refused before any work, and the service answers on.
      await assert.rejects(client.submit({ budgetNfe: 1e10 }), (e: unknown) => e instanceof CoordinatorError && e.status === grpc.status.RESOURCE_EXHAUSTED && /limit: --budget-nfe 10000000000 makes/.test(e.message));
      const states = (await client.list()).runs.map((r) => r.state);
      assert.equal(states.filter((s) => s === 'running').length <= 1, true, `more than one running: ${states.join(', ')}`);
      const ends = await Promise.all(taken.map((id) => client.watch(id, () => undefined)));
      assert.deepEqual(ends.map((e) => e.event), taken.map(() => 'finished'));
      assert.equal((await readdir(join(dir, 'served'))).length, 4, 'refused runs left no folder behind');
    } finally {
      client.close();
    }
  });
});
