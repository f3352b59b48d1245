/**
 * The metrics during real runs: an embedded coordinator (its own registry, served on its own HTTP
 * endpoint) runs searches over two `evosearch worker` processes with --metrics-listen, found through
 * a real NATS. Between two scrapes taken while a run goes on, the NFE and wire-byte counters of the
 * coordinator and of a worker move; the runs-by-state gauge follows the run from none to running to
 * cancelled, and a second run to finished; workers_wanted is the plan's while it runs and 0 after; a
 * worker killed mid-run is counted lost, with the states rebuilt for it; a finished run's NFEs are
 * counted exactly once; and /readyz says 503 until the coordinator serves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { withTimeout } from '../async/timeouts-and-turns.js';
import { CoordinatorClient } from '../coordinator/service/coordinator-client.js';
import { coordinatorHealth, CoordinatorServer } from '../coordinator/service/coordinator-server.js';
import { workersWanted } from '../coordinator/service/workers-wanted.js';
import { planRun } from '../config/plan-run.js';
import { parseRunConfig } from '../config/resolve-run-config.js';
import { healthMetrics } from '../metrics/health-metrics.js';
import { MetricsEndpoint } from '../metrics/http-endpoint.js';
import type { ProcessHealth } from '../metrics/process-health.js';
import { processRegistry } from '../metrics/registry.js';
import type { TypedRunEvent } from '../proto/coordinator-messages.js';
import { httpRequest, sample, scrape } from './support/http-get.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

/** A run's round events as they come, and waiting for the first that passes a test. */
class RoundEvents {
  private readonly seen: { round: number; nfe: number }[] = [];
  private readonly waiting = new Set<() => void>();

  add(event: TypedRunEvent): void {
    if (event.event !== 'round') return;
    this.seen.push({ round: event.payload.round, nfe: event.payload.nfe });
    for (const look of [...this.waiting]) look();
  }

  /** The first round event from index `from` on that passes `test`. */
  first(test: (round: { round: number; nfe: number }) => boolean, what: string, from = 0): Promise<{ round: number; nfe: number; index: number }> {
    return withTimeout(new Promise((resolve) => {
      const look = () => {
        const index = this.seen.findIndex((r, i) => i >= from && test(r));
        if (index < 0) return;
        this.waiting.delete(look);
        resolve({ ...this.seen[index]!, index });
      };
      this.waiting.add(look);
      look();
    }), 120_000, `${what} (rounds seen: ${this.seen.length})`);
  }
}

const WIRE = (direction: 'sent' | 'received') => `evosearch_coordinator_wire_${direction}_bytes_total{peer="workers"}`;
const RUNS = (state: string) => `evosearch_coordinator_runs{state="${state}"}`;

describe('metrics during real runs: an embedded coordinator, two worker processes, NATS', () => {
  let nats: NatsServer;
  let dir: string;
  let coordinator: CoordinatorServer;
  let health: ProcessHealth;
  let endpoint: MetricsEndpoint;
  let client: CoordinatorClient;
  const workers: WorkerProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'evosearch-metrics-'));
    workers.push(...(await startAll([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url, '--metrics-listen', '127.0.0.1:0'])))));
  });
  after(async () => {
    client?.close();
    await coordinator?.stop();
    await endpoint?.close();
    health?.close();
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('/readyz answers 503 until the coordinator serves and is registered, then 200', async () => {
    // The endpoint comes first, as `evosearch coordinator --metrics-listen` starts it.
    const registry = processRegistry();
    health = coordinatorHealth();
    healthMetrics(registry, health);
    endpoint = await MetricsEndpoint.start('127.0.0.1', 0, registry, health);
    const before = await httpRequest(endpoint.address, '/readyz');
    assert.equal(before.status, 503);
    assert.match(before.body, /^not ready: serving: its gRPC service is not up yet; nats: it is not registered in NATS yet\n$/);
    coordinator = await CoordinatorServer.start('127.0.0.1:0', { nats: nats.url, runsDir: join(dir, 'runs'), logger: pino({ level: 'silent' }), health, metrics: registry });
    assert.equal((await httpRequest(endpoint.address, '/readyz')).status, 200);
    client = new CoordinatorClient(coordinator.address);
  });

  it('while a run goes on, its NFE and byte counters move between two scrapes, on the coordinator and on a worker; the runs gauge and workers_wanted follow it; a lost worker and its rebuilt states are counted', async () => {
    const [worker, victim] = workers as [WorkerProcess, WorkerProcess];
    const idle = await scrape(endpoint.address);
    for (const state of ['queued', 'running', 'finished', 'failed', 'cancelled', 'interrupted']) assert.equal(sample(idle, RUNS(state)), 0, state);
    assert.deepEqual([sample(idle, 'evosearch_coordinator_nfe_total'), sample(idle, WIRE('sent')), sample(idle, WIRE('received')), sample(idle, 'evosearch_coordinator_workers_wanted')], [0, 0, 0, 0]);

    const config = { budgetNfe: 400000, seed: 1 };
    const { runId } = await client.submit(config);
    const wanted = workersWanted(await planRun({ ...parseRunConfig(config, 'the test'), cluster: nats.url }, 'the test'));
    assert.ok(wanted > 1, `an analytic EvoSearch run keeps more than one worker busy (${wanted})`);
    const rounds = new RoundEvents();
    const watching = client.watch(runId, (event) => rounds.add(event));

    await rounds.first(() => true, 'the first round');
    const first = await scrape(endpoint.address);
    const workerFirst = await scrape(worker.metrics!);
    assert.deepEqual([sample(first, RUNS('running')), sample(first, RUNS('queued')), sample(first, 'evosearch_coordinator_queue_depth'), sample(first, 'evosearch_coordinator_workers_wanted')], [1, 0, 0, wanted]);
    const nfe1 = sample(first, 'evosearch_coordinator_nfe_total');
    assert.ok(nfe1 > 0 && sample(first, WIRE('sent')) > 0 && sample(first, WIRE('received')) > 0, 'the first round is counted');
    assert.ok(sample(workerFirst, 'evosearch_worker_nfe_total') > 0 && sample(workerFirst, 'evosearch_worker_wire_received_bytes_total') > 0, 'the worker counted its share');

    // Two rounds counted after the first scrape: the second of them was sent, run and answered after it.
    const later = Math.max(nfe1, sample(workerFirst, 'evosearch_worker_nfe_total'));
    const next = await rounds.first((r) => r.nfe > later, 'a round counted after the first scrape');
    await rounds.first(() => true, 'the round after that', next.index + 1);
    const second = await scrape(endpoint.address);
    const workerSecond = await scrape(worker.metrics!);
    for (const series of ['evosearch_coordinator_nfe_total', WIRE('sent'), WIRE('received')]) assert.ok(sample(second, series) > sample(first, series), `${series}: ${sample(first, series)} then ${sample(second, series)}`);
    for (const series of ['evosearch_worker_nfe_total', 'evosearch_worker_wire_sent_bytes_total', 'evosearch_worker_wire_received_bytes_total', 'evosearch_worker_batches_total', 'evosearch_worker_busy_seconds_total']) {
      assert.ok(sample(workerSecond, series) > sample(workerFirst, series), `${series}: ${sample(workerFirst, series)} then ${sample(workerSecond, series)}`);
    }
    // The analytic model runs no onnxruntime session: no time inside the model runtime.
    assert.equal(sample(workerSecond, 'evosearch_worker_model_seconds_total'), 0);
    assert.equal(sample(workerSecond, 'evosearch_worker_runs'), 1);
    assert.ok(sample(second, 'evosearch_coordinator_checkpoint_write_seconds_count') >= 1, 'a round\'s checkpoint was written and timed');
    assert.equal(sample(second, 'evosearch_coordinator_workers_lost_total'), 0);

    // A worker dies mid-run: its states are rebuilt on the other, and the counters say so after the round.
    const killedAt = rounds.first(() => true, 'a round', next.index + 2);
    victim.child.kill('SIGKILL');
    await victim.exited;
    await killedAt;
    let afterLoss = await scrape(endpoint.address);
    for (let seen = next.index + 3; sample(afterLoss, 'evosearch_coordinator_workers_lost_total') === 0; seen++) {
      await rounds.first(() => true, 'a round after the worker was killed, counting it lost', seen);
      afterLoss = await scrape(endpoint.address);
    }
    assert.equal(sample(afterLoss, 'evosearch_coordinator_workers_lost_total'), 1);
    assert.ok(sample(afterLoss, 'evosearch_coordinator_rebuilt_states_total') > 0 && sample(afterLoss, 'evosearch_coordinator_rebuilt_nfe_total') > 0, 'the lost worker\'s states were rebuilt, at a cost');

    await client.cancel(runId);
    assert.equal((await watching).event, 'cancelled');
    const cancelled = await scrape(endpoint.address);
    assert.deepEqual([sample(cancelled, RUNS('running')), sample(cancelled, RUNS('cancelled')), sample(cancelled, 'evosearch_coordinator_workers_wanted')], [0, 1, 0]);
  });

  it('a run to its end: counted finished, its NFEs once (the record\'s), its bytes as the worker counted them', async () => {
    const worker = workers[0]!;
    const before = await scrape(endpoint.address);
    const workerBefore = await scrape(worker.metrics!);
    const { runId } = await client.submit({ budgetNfe: 3000, seed: 2 });
    const last = await client.watch(runId, () => undefined);
    assert.equal(last.event, 'finished');
    const spent = last.event === 'finished' ? last.payload.spent.nfe : NaN;
    const done = await scrape(endpoint.address);
    const workerDone = await scrape(worker.metrics!);
    assert.deepEqual([sample(done, RUNS('finished')) - sample(before, RUNS('finished')), sample(done, RUNS('running')), sample(done, 'evosearch_coordinator_workers_wanted')], [1, 0, 0]);
    assert.equal(sample(done, 'evosearch_coordinator_nfe_total') - sample(before, 'evosearch_coordinator_nfe_total'), spent);
    assert.equal(sample(workerDone, 'evosearch_worker_nfe_total') - sample(workerBefore, 'evosearch_worker_nfe_total'), spent, 'the one worker left did every NFE');
    // What one side sent the other received; a few bytes apart at most (a Health poll's answer in flight when a batch ended).
    const delta = (after: Map<string, number>, earlier: Map<string, number>, series: string) => sample(after, series) - sample(earlier, series);
    const toWorker = delta(done, before, WIRE('sent'));
    const fromWorker = delta(done, before, WIRE('received'));
    assert.ok(toWorker > 0 && fromWorker > 0);
    assert.ok(Math.abs(toWorker - delta(workerDone, workerBefore, 'evosearch_worker_wire_received_bytes_total')) <= 1024, `sent ${toWorker}, the worker received ${delta(workerDone, workerBefore, 'evosearch_worker_wire_received_bytes_total')}`);
    assert.ok(Math.abs(fromWorker - delta(workerDone, workerBefore, 'evosearch_worker_wire_sent_bytes_total')) <= 1024, `received ${fromWorker}, the worker sent ${delta(workerDone, workerBefore, 'evosearch_worker_wire_sent_bytes_total')}`);
  });
});
