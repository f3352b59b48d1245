/**
 * Workers that stop answering: a process stopped with SIGSTOP (its TCP connection stays open, so only
 * liveness checks can tell), a worker whose event loop answers but whose compute is stuck, and a run
 * cancelled while one of its workers never answers. Real `evosearch worker` processes where the
 * transport is what is tested; where a worker must answer Health but never finish (a hung GPU, which a
 * real worker cannot be made to do on purpose), a hostile worker service on the other side of a real
 * gRPC connection.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch, RunCancelledError, type JournalEntry, type SearchOutcome } from '../coordinator/engine/run-search.js';
import { WorkCancelledError, WorkerLostError, type WorkerPool } from '../proto/worker-pool.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { GrpcWorkerPool, type GrpcPoolOptions } from '../coordinator/transport/grpc-pool.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { resolveRunConfig, type RunPlan } from '../config/resolve-run-config.js';
import { zeroCounters, type Command, type CommandResult } from '../proto/commands.js';
import { workerServerOptions } from '../proto/grpc-limits.js';
import { encodeFrames, FrameAssembler, type Frame } from '../proto/tensor-frames.js';
import { fetchWorkerHealth } from '../proto/worker-client.js';
import { WORKER_PROTOCOL_VERSION, workerService, type HealthReply } from '../proto/worker-service.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';
import { searchDecisions } from './support/search-decisions.js';
import { waitFor } from './support/wait-for.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const decisions = searchDecisions;

function inProcess(plan: RunPlan): WorkerPool {
  const sampler = createSampler(plan.sampler);
  return new InProcessPool([new CommandExecutor(loadModel(plan.model, { prediction: sampler.prediction }), sampler, BigInt(plan.seed), { batchSize: plan.batchSize })]);
}

/** Worker processes of this file: stopped ones are continued, then all are killed, after each test. */
const started: WorkerProcess[] = [];
afterEach(async () => {
  for (const w of started) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGCONT');
  await stopWorkers(started.splice(0));
});
const workers = async (count: number) => {
  const list = await startAll(Array.from({ length: count }, () => startWorker('analytic:gmm')));
  started.push(...list);
  return list;
};

/** `pool`, with `before` run ahead of each batch (to stop a worker as its batch goes out) and the failures it gave. */
function watched(pool: GrpcWorkerPool, before: (index: number) => void) {
  const failures: unknown[] = [];
  const wrapper: WorkerPool = {
    get size() {
      return pool.size;
    },
    describe: (i) => pool.describe(i),
    execute: (i, commands, onSpent, signal) => {
      before(i);
      return pool.execute(i, commands, onSpent, signal).catch((error: unknown) => {
        failures.push(error);
        throw error;
      });
    },
    close: () => pool.close(),
  };
  return { wrapper, failures };
}

const advance: Command[] = [{ kind: 'advance', ids: [1], from: 0, to: 1, purpose: 'advance' }];

describe('a worker process stopped with SIGSTOP is lost within seconds, not at the batch deadline', () => {
  it('stopped as its batch of the second round goes out: the run finishes with the undisturbed answer, the worker reported lost', async (t) => {
    const plan = resolveRunConfig({ budgetNfe: 20000, seed: 1 });
    const reference = decisions(await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(inProcess(plan)), { population: 8 }));
    const list = await workers(3);
    const pool = await GrpcWorkerPool.connect(list.map((w) => w.address), workerSetupFor(plan), { runId: 'sigstop' });
    let rounds = 0;
    let stoppedAt = 0;
    const { wrapper, failures } = watched(pool, (i) => {
      if (i === 1 && rounds >= 1 && stoppedAt === 0) {
        list[1]!.child.kill('SIGSTOP');
        stoppedAt = performance.now();
      }
    });
    let outcome: SearchOutcome;
    const dispatcher = new Dispatcher(wrapper);
    try {
      outcome = await runSearch(createSearch(plan, createSampler(plan.sampler)), dispatcher, { population: 8, onRound: () => (rounds += 1) });
    } finally {
      await pool.close();
    }
    const took = performance.now() - stoppedAt;
    assert.ok(stoppedAt > 0, 'the worker was never stopped: the test proves nothing');
    assert.deepEqual(decisions(outcome), reference);
    assert.equal(dispatcher.stats.lostWorkers, 1);
    assert.ok(dispatcher.stats.rebuiltStates > 0, 'nothing was rebuilt');
    assert.equal(failures.length, 1, `failures: ${failures.map(String).join('; ')}`);
    const lost = failures[0];
    assert.ok(lost instanceof WorkerLostError && lost.worker === list[1]!.address, `not the stopped worker's loss: ${String(lost)}`);
    // Keepalive (UNAVAILABLE) or the Health watch, whichever saw it first; seconds either way.
    assert.match(lost.message, /UNAVAILABLE|no Health answer for/);
    assert.ok(took < 60_000, `the stopped worker held the run ${Math.round(took)} ms`);
    t.diagnostic(`${lost.message}; the run finished ${Math.round(took)} ms after the stop`);
  });

  it('keepalive alone (no Health polling) fails the call with UNAVAILABLE', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1000, seed: 2 });
    const [worker] = await workers(1);
    // A deadline short enough for this test to fail, not hang, without keepalive (DEADLINE_EXCEEDED).
    const pool = await GrpcWorkerPool.connect([worker!.address], workerSetupFor(plan), { runId: 'keepalive', healthEveryMs: 0, batchDeadlineMs: 45_000 });
    try {
      await pool.execute(0, [{ kind: 'init', ids: [1] }]);
      worker!.child.kill('SIGSTOP');
      const sent = performance.now();
      await assert.rejects(pool.execute(0, advance), (e: unknown) => e instanceof WorkerLostError && /UNAVAILABLE/.test(e.message));
      const took = performance.now() - sent;
      assert.ok(took < 20_000, `keepalive took ${Math.round(took)} ms to see the stopped worker`);
    } finally {
      await pool.close();
    }
  });
});

describe("a real worker's progress, as the pool's watch reads it", () => {
  it('Health counts the NFEs of a batch while it runs; the pool tells onSpent, and the count ends at the batch total', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1000, seed: 5 });
    const [worker] = await workers(1);
    const pool = await GrpcWorkerPool.connect([worker!.address], workerSetupFor(plan), { runId: 'counting', healthEveryMs: 100 });
    try {
      // 3 million analytic NFEs: a few seconds of one worker thread.
      const ids = Array.from({ length: 60_000 }, (_, i) => i);
      await pool.execute(0, [{ kind: 'init', ids }]);
      const before = (await fetchWorkerHealth(worker!.address)).nfe;
      assert.equal(before, 0);
      const told: number[] = [];
      const [result] = await pool.execute(0, [{ kind: 'advance', ids, from: 0, to: createSampler(plan.sampler).steps, purpose: 'advance' }], (nfe) => told.push(nfe));
      const total = result!.counters.nfe;
      assert.equal((await fetchWorkerHealth(worker!.address)).nfe, total, 'the counter ends at the NFEs the batch spent');
      assert.ok(told.length >= 3, `onSpent told ${JSON.stringify(told)} during a batch of ${total} NFEs`);
      assert.ok(told.every((n, i) => n > 0 && n <= total && (i === 0 || n > told[i - 1]!)), `onSpent: ${JSON.stringify(told)} of ${total}`);
    } finally {
      await pool.close();
    }
  });
});

describe('a batch whose call is cancelled', () => {
  it('stops the wait at once; the worker runs the batch to its end, drops its answer, and is idle again (a drain would not hang)', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1000, seed: 5 });
    const [worker] = await workers(1);
    const pool = await GrpcWorkerPool.connect([worker!.address], workerSetupFor(plan), { runId: 'cancelled-call' });
    try {
      const ids = Array.from({ length: 60_000 }, (_, i) => i);
      await pool.execute(0, [{ kind: 'init', ids }]);
      const stop = new AbortController();
      const call = pool.execute(0, [{ kind: 'advance', ids, from: 0, to: createSampler(plan.sampler).steps, purpose: 'advance' }], undefined, stop.signal);
      call.catch(() => undefined); // judged below, once cancelled
      // Cancelled once the worker runs the batch (its Health counts it in flight).
      await waitFor(async () => (await fetchWorkerHealth(worker!.address)).inFlight === 1, 10_000, 'the batch to be running on the worker', 20);
      stop.abort('enough');
      const aborted = performance.now();
      await assert.rejects(call, (e: unknown) => e instanceof WorkCancelledError && e.message === 'cancelled: enough');
      assert.ok(performance.now() - aborted < 1000, 'the cancelled call was waited for');
      let health = await fetchWorkerHealth(worker!.address);
      assert.equal(health.inFlight, 1, 'the worker is still running the batch');
      await waitFor(async () => (health = await fetchWorkerHealth(worker!.address)).inFlight === 0, 30_000, 'the worker to finish the cancelled batch', 50);
      assert.equal(health.nfe, ids.length * createSampler(plan.sampler).steps);
      assert.match(worker!.log(), /batch finished after its call was cancelled: its answer is dropped/);
      const [dropped] = await pool.execute(0, [{ kind: 'drop', ids }]);
      assert.equal(dropped!.kind, 'drop');
    } finally {
      await pool.close();
    }
  });
});

/** What the hostile worker does with Health and with a batch. */
interface Behaviour {
  /** Health's answer, asked for the n-th time (0 first); null: never answer. */
  readonly health: (n: number) => HealthReply | null;
  /** Milliseconds after which the batch is answered; null: never. */
  readonly answerAfterMs: number | null;
}

/**
 * A worker service that speaks the protocol (Hello, Setup) and then misbehaves as told: the other
 * side of a real gRPC connection, for what a real worker cannot be made to do (answer Health while its
 * compute hangs).
 */
async function hostileWorker(behaviour: Behaviour) {
  const server = new grpc.Server(workerServerOptions);
  let asked = 0;
  let cancelled = 0;
  const timers: NodeJS.Timeout[] = [];
  server.addService(workerService, {
    hello: (_call: unknown, done: grpc.sendUnaryData<unknown>) => done(null, { protocolVersion: WORKER_PROTOCOL_VERSION, model: 'analytic:gmm', modelBuild: 'hostile', description: 'hostile', role: 'both' }),
    setup: (_call: unknown, done: grpc.sendUnaryData<unknown>) => done(null, { description: 'hostile' }),
    health: (_call: unknown, done: grpc.sendUnaryData<HealthReply>) => {
      const reply = behaviour.health(asked++);
      if (reply !== null) done(null, reply);
    },
    execute: (call: grpc.ServerDuplexStream<Frame, Frame>) => {
      const assembler = new FrameAssembler('commands');
      call.on('cancelled', () => (cancelled += 1));
      call.on('data', (frame: Frame) => {
        const body = assembler.add(frame);
        if (body === null || behaviour.answerAfterMs === null) return;
        const results: CommandResult[] = body.body.map((c) => ({ kind: c.kind, scores: [], samples: [], counters: { ...zeroCounters(), nfe: 1 } }));
        timers.push(setTimeout(() => {
          for (const out of encodeFrames(body.runId, 'results', results)) call.write(out);
          call.end();
        }, behaviour.answerAfterMs));
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return {
    address: `127.0.0.1:${port}`,
    cancelled: () => cancelled,
    close: () => {
      timers.forEach(clearTimeout);
      server.forceShutdown();
    },
  };
}

const health = (nfe: number | undefined): HealthReply => ({ status: 'serving', inFlight: 1, busyMs: 0, modelMs: 0, batches: 0, ...(nfe !== undefined ? { nfe } : {}) });

async function againstHostile(behaviour: Behaviour, options: Omit<GrpcPoolOptions, 'runId'>, work: (pool: GrpcWorkerPool, hostile: Awaited<ReturnType<typeof hostileWorker>>) => Promise<void>) {
  const hostile = await hostileWorker(behaviour);
  const plan = resolveRunConfig({ budgetNfe: 1000 });
  const pool = await GrpcWorkerPool.connect([hostile.address], workerSetupFor(plan), { runId: 'hostile', ...options });
  try {
    await work(pool, hostile);
  } finally {
    await pool.close();
    hostile.close();
  }
}


describe('a worker that answers Health but makes no progress, or answers nothing at all', () => {
  it('its NFE counter stands still while a batch that runs the model is in flight: lost after stallAfterMs, its call cancelled', async () => {
    await againstHostile({ health: () => health(40), answerAfterMs: null }, { healthEveryMs: 100, stallAfterMs: 1500, batchDeadlineMs: 60_000 }, async (pool, hostile) => {
      const sent = performance.now();
      await assert.rejects(pool.execute(0, advance), (e: unknown) => {
        assert.ok(e instanceof WorkerLostError, String(e));
        assert.match(e.message, new RegExp(`^worker ${hostile.address.replace(/\./g, '\\.')}: answers Health, but no progress for 1\\.[5-9] s: its NFE counter stayed at 40 .*; its call is cancelled and its states are rebuilt on the other workers$`));
        return true;
      });
      const took = performance.now() - sent;
      assert.ok(took >= 1500 && took < 10_000, `declared stalled after ${Math.round(took)} ms`);
      await waitFor(() => hostile.cancelled() === 1, 5000, 'the hostile worker to see its call cancelled', 50);
    });
  });

  it('a moving counter keeps a slow batch alive, and feeds onSpent while it runs', async () => {
    await againstHostile({ health: (n) => health(100 + 7 * n), answerAfterMs: 1500 }, { healthEveryMs: 100, stallAfterMs: 500 }, async (pool) => {
      const told: number[] = [];
      const [result] = await pool.execute(0, advance, (nfe) => told.push(nfe));
      assert.equal(result!.kind, 'advance');
      assert.ok(told.length >= 3, `onSpent was told ${JSON.stringify(told)}`);
      assert.ok(told.every((n, i) => n > 0 && n % 7 === 0 && (i === 0 || n > told[i - 1]!)), `onSpent: ${JSON.stringify(told)}`);
    });
  });

  it('a batch that runs no model, or a worker that counts no NFEs (an earlier release), is not held to stallAfterMs', async () => {
    for (const [nfe, commands] of [[40, [{ kind: 'drop', ids: [1] }]], [undefined, advance]] as const) {
      await againstHostile({ health: () => health(nfe), answerAfterMs: null }, { healthEveryMs: 100, stallAfterMs: 300, batchDeadlineMs: 2000 }, async (pool) => {
        // Only the batch deadline ends it.
        await assert.rejects(pool.execute(0, commands), (e: unknown) => e instanceof WorkerLostError && /DEADLINE_EXCEEDED/.test(e.message));
      });
    }
  });

  it('no Health answer while its connection answers pings (a hung event loop behind a live socket): lost after silentAfterMs', async () => {
    await againstHostile({ health: (n) => (n === 0 ? health(0) : null), answerAfterMs: null }, { healthEveryMs: 100, silentAfterMs: 1000, batchDeadlineMs: 60_000 }, async (pool, hostile) => {
      const sent = performance.now();
      await assert.rejects(pool.execute(0, advance), (e: unknown) => e instanceof WorkerLostError && /: no Health answer for 1\.\d s while a batch was in flight on it .*its states are rebuilt on the other workers$/.test(e.message));
      const took = performance.now() - sent;
      assert.ok(took >= 1000 && took < 10_000, `declared silent after ${Math.round(took)} ms`);
      await waitFor(() => hostile.cancelled() === 1, 5000, 'the hostile worker to see its call cancelled', 50);
    });
  });
});

describe('cancelling a run while one of its workers never answers', () => {
  it('stops within a couple of seconds with RunCancelledError; the rounds kept resume to the undisturbed answer', async () => {
    const plan = resolveRunConfig({ budgetNfe: 20000, seed: 4 });
    const reference = decisions(await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(inProcess(plan)), { population: 8 }));
    const list = await workers(2);
    const pool = await GrpcWorkerPool.connect(list.map((w) => w.address), workerSetupFor(plan), { runId: 'cancel' });
    const stop = new AbortController();
    let rounds = 0;
    let abortedAt = 0;
    const { wrapper } = watched(pool, (i) => {
      if (i === 1 && rounds >= 2 && abortedAt === 0) {
        list[1]!.child.kill('SIGSTOP');
        // Well before keepalive or the Health watch could see the worker gone: the round is stuck.
        abortedAt = performance.now() + 300;
        setTimeout(() => stop.abort('cancelled by the test'), 300);
      }
    });
    const journal: JournalEntry[] = [];
    let error: unknown = null;
    try {
      await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(wrapper), { population: 8, signal: stop.signal, onRound: () => (rounds += 1), onJournal: (entry) => void journal.push(entry) });
    } catch (e) {
      error = e;
    } finally {
      await pool.close();
    }
    const took = performance.now() - abortedAt;
    assert.ok(abortedAt > 0, 'the worker was never stopped: the test proves nothing');
    assert.ok(error instanceof RunCancelledError, `not a cancellation: ${String(error)}`);
    assert.match(error.message, new RegExp(`^cancelled after ${journal.length} complete rounds \\(the round in flight was stopped midway\\): cancelled by the test$`));
    assert.ok(took < 3000, `the cancelled run took ${Math.round(took)} ms to stop`);
    assert.equal(journal.length, 2);
    // The kept rounds are a checkpoint like any: resumed elsewhere, the answer is the undisturbed one.
    const resumed = await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(inProcess(plan)), { population: 8, replay: journal });
    assert.deepEqual(decisions(resumed), reference);
  });
});
