import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch, type JournalEntry, type SearchOutcome, type TakenSnapshot } from '../coordinator/engine/run-search.js';
import type { WorkerPool } from '../proto/worker-pool.js';
import { WorkerCommandError } from '../proto/worker-pool.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { GrpcWorkerPool, WorkerRefusedError } from '../coordinator/transport/grpc-pool.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { ThreadPool } from '../worker/thread-pool.js';
import { planRun } from '../config/plan-run.js';
import { resolveRunConfig, type MethodName, type RunPlan } from '../config/resolve-run-config.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { WORKER_PROTOCOL_VERSION, workerService } from '../proto/worker-service.js';
import type { Command } from '../proto/commands.js';
import { encodeFrames } from '../proto/tensor-frames.js';
import { setupToWire } from '../proto/setup-message.js';
import { fetchWorkerHealth } from '../proto/worker-client.js';
import { WorkerServer } from '../worker/grpc-server.js';
import { repoRoot } from './support/repo-root.js';
import { searchDecisions } from './support/search-decisions.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const run = promisify(execFile);

async function search(plan: RunPlan, pool: WorkerPool): Promise<SearchOutcome> {
  return runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(pool), { population: 8 });
}

function inProcess(plan: RunPlan): WorkerPool {
  const sampler = createSampler(plan.sampler);
  return new InProcessPool([new CommandExecutor(loadModel(plan.model, { prediction: sampler.prediction }), sampler, BigInt(plan.seed), { batchSize: plan.batchSize })]);
}

/** What the search decided: every candidate's parents, origin and rewards, and the best. */
const decisions = searchDecisions;

/** Worker processes serving `bundle`, one per role given (`--role denoise|reward|both`). */
const roleWorkers = (bundle: string, roles: readonly string[]) => startAll(roles.map((role) => startWorker(bundle, ['--role', role])));

/** The decisions of `plan` on two local worker threads: the reference the gRPC runs must match. */
async function onTwoThreads(plan: RunPlan) {
  const threads = await ThreadPool.start(2, workerSetupFor(plan));
  try {
    return decisions(await search(plan, threads));
  } finally {
    await threads.close();
  }
}

describe('gRPC workers: real worker processes on loopback', () => {
  const workers: WorkerProcess[] = [];
  before(async () => {
    workers.push(...(await startAll([0, 1, 2].map(() => startWorker('analytic:gmm')))));
  });
  after(() => stopWorkers(workers));

  for (const method of ['evosearch', 'best-of-n', 'particles'] as MethodName[]) {
    it(`${method}: the same seed gives the same decisions on 1 and 3 worker processes as in one process`, async () => {
      const plan = resolveRunConfig({ method, budgetNfe: 3000, seed: 7 });
      const reference = decisions(await search(plan, inProcess(plan)));
      for (const count of [1, 3]) {
        const pool = await GrpcWorkerPool.connect(workers.slice(0, count).map((w) => w.address), workerSetupFor(plan), { runId: `${method}-${count}` });
        try {
          const outcome = await search(plan, pool);
          assert.deepEqual(decisions(outcome), reference, `${count} workers`);
          if (count === 3 && method === 'evosearch') assert.ok(outcome.placement.bytesMoved > 0, 'balancing moved no state between worker processes');
        } finally {
          await pool.close();
        }
      }
    });
  }

  it('a worker added mid-run receives work, and the decisions do not change', async () => {
    const plan = resolveRunConfig({ budgetNfe: 5000, seed: 11 });
    const reference = decisions(await search(plan, inProcess(plan)));
    const pool = await GrpcWorkerPool.connect([workers[0]!.address], workerSetupFor(plan), { runId: 'grow' });
    const commandsBy = new Map<number, number>();
    const counting: WorkerPool = {
      get size() {
        return pool.size;
      },
      describe: (i) => pool.describe(i),
      execute: (i, commands) => {
        commandsBy.set(i, (commandsBy.get(i) ?? 0) + commands.length);
        return pool.execute(i, commands);
      },
      close: () => pool.close(),
    };
    let rounds = 0;
    try {
      const dispatcher = new Dispatcher(counting, {
        beforeRound: async () => {
          rounds += 1;
          if (rounds === 3) await pool.add(workers[1]!.address);
        },
      });
      const outcome = await runSearch(createSearch(plan, createSampler(plan.sampler)), dispatcher, { population: 8 });
      assert.deepEqual(decisions(outcome), reference);
      assert.equal(pool.size, 2);
      assert.ok((commandsBy.get(1) ?? 0) > 0, `the new worker got no commands: ${[...commandsBy].join('; ')}`);
    } finally {
      await pool.close();
    }
  });

  it('evosearch run --workers-at gives the local run\'s answer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'grpc-run-'));
    try {
      const bin = join(repoRoot(), 'bin', 'evosearch.js');
      const args = ['run', '--budget-nfe', '2000', '--seed', '3', '--no-progress'];
      await run(process.execPath, [bin, ...args, '--out', join(dir, 'local')]);
      await run(process.execPath, [bin, ...args, '--workers-at', workers.map((w) => w.address).join(','), '--out', join(dir, 'cluster')]);
      const local = JSON.parse(await readFile(join(dir, 'local', 'record.json'), 'utf8')) as { best: unknown; workers: string[] };
      const cluster = JSON.parse(await readFile(join(dir, 'cluster', 'record.json'), 'utf8')) as { best: unknown; workers: string[] };
      assert.deepEqual(cluster.best, local.best);
      assert.equal(cluster.workers.length, 3);
      assert.ok(cluster.workers.every((w) => w.startsWith('127.0.0.1:')), cluster.workers.join(', '));
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('refuses a worker that serves another model build, naming both builds', async () => {
    const other = await startWorker('analytic:gmm?seed=2');
    try {
      const plan = resolveRunConfig({ budgetNfe: 1000 });
      await assert.rejects(
        GrpcWorkerPool.connect([workers[0]!.address, other.address], workerSetupFor(plan), { runId: 'builds' }),
        (e: unknown) => e instanceof WorkerRefusedError && e.address === other.address && e.message.includes(other.build) && e.message.includes(workers[0]!.build),
      );
      // The worker itself refuses a run that needs another build.
      await assert.rejects(
        GrpcWorkerPool.connect([other.address], workerSetupFor(plan), { runId: 'builds', expectedBuild: workers[0]!.build }),
        (e: unknown) => e instanceof WorkerRefusedError && /FAILED_PRECONDITION/.test(e.message) && e.message.includes(`needs build ${workers[0]!.build}`),
      );
    } finally {
      await stopWorkers([other]);
    }
  });

  it('refuses a coordinator that speaks another protocol version (earlier releases: JSON bodies, snapshot paths; or a later one)', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1000 });
    for (const version of [1, 2, WORKER_PROTOCOL_VERSION + 1]) {
      await assert.rejects(
        GrpcWorkerPool.connect([workers[0]!.address], workerSetupFor(plan), { runId: 'version', protocolVersion: version }),
        (e: unknown) => e instanceof WorkerRefusedError && new RegExp(`protocol version ${WORKER_PROTOCOL_VERSION}, the coordinator ${version}`).test(e.message),
      );
    }
  });

  it('an unreachable worker is refused within the deadline, naming its address', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1000 });
    await assert.rejects(
      GrpcWorkerPool.connect(['127.0.0.1:1'], workerSetupFor(plan), { runId: 'nobody', setupDeadlineMs: 2000 }),
      (e: unknown) => e instanceof WorkerRefusedError && e.address === '127.0.0.1:1',
    );
  });
});

describe('gRPC workers: several runs on one worker', () => {
  it('runs share a worker, each with its own setup; a full worker refuses another run (how many it holds, the flag that raises it) and never evicts a live one', async () => {
    const server = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', maxRuns: 2, logger: pino({ level: 'silent' }) });
    try {
      const plans = [1, 2, 3].map((seed) => resolveRunConfig({ budgetNfe: 1000, seed }));
      const pools = await Promise.all(plans.slice(0, 2).map((plan, i) => GrpcWorkerPool.connect([server.address], workerSetupFor(plan), { runId: `run-${i}` })));
      // Two runs at once on one worker, each giving its own seed's answer.
      const outcomes = await Promise.all(pools.map((pool, i) => search(plans[i]!, pool)));
      for (const [i, outcome] of outcomes.entries()) assert.deepEqual(decisions(outcome), decisions(await search(plans[i]!, inProcess(plans[i]!))));
      await assert.rejects(GrpcWorkerPool.connect([server.address], workerSetupFor(plans[2]!), { runId: 'run-2' }), (e: unknown) => {
        assert.ok(e instanceof WorkerRefusedError, String(e));
        assert.match(e.message, /RESOURCE_EXHAUSTED: this worker holds 2 runs, as many as it may \(--max-runs 2\), and none has been idle for 10 min \(--idle-run-timeout\)/);
        assert.doesNotMatch(e.message, /run-0|run-1/, 'the refusal names the runs the worker serves');
        return true;
      });
      // Both runs are still there, and give their answers again.
      for (const [i, pool] of pools.entries()) assert.deepEqual(decisions(await search(plans[i]!, pool)), decisions(outcomes[i]!));
      await Promise.all(pools.map((p) => p.close()));
    } finally {
      await server.close();
    }
  });

  it('a run idle past the idle timeout is closed to make room, and the log says so; its batches are then refused without naming the run that took its place', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const server = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', maxRuns: 1, idleRunMs: 300, logger });
    try {
      const plans = [1, 2].map((seed) => resolveRunConfig({ budgetNfe: 1000, seed }));
      const idle = await GrpcWorkerPool.connect([server.address], workerSetupFor(plans[0]!), { runId: 'idle-run' });
      await search(plans[0]!, idle);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const newer = await GrpcWorkerPool.connect([server.address], workerSetupFor(plans[1]!), { runId: 'newer-run' });
      assert.deepEqual(decisions(await search(plans[1]!, newer)), decisions(await search(plans[1]!, inProcess(plans[1]!))));
      const closed = lines.map((l) => JSON.parse(l) as { msg: string; runId?: string }).find((l) => /^run closed to make room: idle for [\d.]+ s, past the idle timeout$/.test(l.msg));
      assert.equal(closed?.runId, 'idle-run', lines.join(''));
      await assert.rejects(search(plans[0]!, idle), (e: unknown) => e instanceof WorkerCommandError && /run idle-run is not set up on this worker/.test(e.message) && !/newer-run/.test(e.message));
      await Promise.all([idle, newer].map((p) => p.close()));
    } finally {
      await server.close();
    }
  });
});

describe('gRPC workers: oversized input', () => {
  it('a batch announcing tensors over the size limit is refused (INVALID_ARGUMENT) and the worker goes on serving', async () => {
    const server = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', logger: pino({ level: 'silent' }) });
    const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    try {
      const m = workerService.execute;
      const code = await new Promise<number>((resolve) => {
        const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), {});
        call.on('error', (e: grpc.ServiceError) => resolve(e.code));
        call.on('data', () => undefined);
        call.write({ header: { runId: 'r', tensorLengths: [4e12], commands: { commands: [] } } });
        call.end();
      });
      assert.equal(code, grpc.status.INVALID_ARGUMENT);
      const plan = resolveRunConfig({ budgetNfe: 1000 });
      const pool = await GrpcWorkerPool.connect([server.address], workerSetupFor(plan), { runId: 'after' });
      assert.deepEqual(decisions(await search(plan, pool)), decisions(await search(plan, inProcess(plan))));
      await pool.close();
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('gRPC workers: an ONNX bundle, lifecycle and failure', () => {
  it('tiny-sd over 2 worker processes gives exactly what 2 worker threads give, tensors chunked both ways', async () => {
    const bundle = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
    const plan = await planRun({ model: bundle, prompt: 'two red circles left of a blue square', budgetNfe: 600, seed: 5 }, 'test');
    const reference = await onTwoThreads(plan);
    const workers = await startAll([0, 1].map(() => startWorker(bundle)));
    try {
      const pool = await GrpcWorkerPool.connect(workers.map((w) => w.address), workerSetupFor(plan), { runId: 'bundle' });
      try {
        const outcome = await search(plan, pool);
        assert.deepEqual(decisions(outcome), reference);
        assert.deepEqual(outcome.population[0]!.shape, [3, 32, 32]);
        // Health splits each worker's busy time: the part inside the model runtime is some, not all, of it.
        for (const h of await pool.health()) {
          assert.ok(h.batches > 0 && h.modelMs > 0 && h.modelMs < h.busyMs, `health: ${JSON.stringify(h)}`);
        }
      } finally {
        await pool.close();
      }
    } finally {
      await stopWorkers(workers);
    }
  });

  it('roles: denoising-only workers score on a reward worker, with exactly the answer of workers doing both', async () => {
    const bundle = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
    const plan = await planRun({ model: bundle, prompt: 'a small yellow square', budgetNfe: 600, seed: 8 }, 'test');
    const reference = await onTwoThreads(plan);
    const workers = await roleWorkers(bundle, ['denoise', 'denoise', 'reward']);
    try {
      const pool = await GrpcWorkerPool.connect(workers.map((w) => w.address), workerSetupFor(plan), { runId: 'roles' });
      try {
        assert.equal(pool.size, 2, 'the reward worker takes no commands from the coordinator');
        assert.deepEqual(pool.rewardAddresses, [workers[2]!.address]);
        const outcome = await search(plan, pool);
        assert.deepEqual(decisions(outcome), reference);
        // The reward worker did the scoring: the denoising workers sent it every batch of samples.
        const health = await pool.health();
        assert.equal(health.length, 3);
        assert.ok(health[2]!.batches > 0, `the reward worker scored nothing: ${JSON.stringify(health)}`);
      } finally {
        await pool.close();
      }
      await assert.rejects(
        GrpcWorkerPool.connect([workers[0]!.address], workerSetupFor(plan), { runId: 'alone' }),
        (e: unknown) => e instanceof WorkerRefusedError && /no reward worker is in the run/.test(e.message),
      );
      await assert.rejects(
        GrpcWorkerPool.connect([workers[2]!.address], workerSetupFor(plan), { runId: 'alone' }),
        (e: unknown) => e instanceof WorkerRefusedError && /none of these workers denoises/.test(e.message),
      );
    } finally {
      await stopWorkers(workers);
    }
  });

  it('roles: a reward worker killed after setup: the denoising workers score on the other one, with the same answer', async () => {
    const bundle = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
    const plan = await planRun({ model: bundle, prompt: 'a small yellow square', budgetNfe: 600, seed: 9 }, 'test');
    const reference = await onTwoThreads(plan);
    const workers = await roleWorkers(bundle, ['denoise', 'denoise', 'reward', 'reward']);
    try {
      const pool = await GrpcWorkerPool.connect(workers.map((w) => w.address), workerSetupFor(plan), { runId: 'reward-loss' });
      try {
        workers[2]!.child.kill('SIGKILL');
        await workers[2]!.exited;
        assert.deepEqual(decisions(await search(plan, pool)), reference);
        assert.ok((await fetchWorkerHealth(workers[3]!.address)).batches > 0, 'the surviving reward worker scored nothing');
      } finally {
        await pool.close();
      }
    } finally {
      await stopWorkers(workers);
    }
  });

  it('SIGTERM drains a worker: it finishes, deregisters from gRPC and exits 0', async () => {
    const worker = await startWorker('analytic:gmm');
    const plan = resolveRunConfig({ budgetNfe: 1000 });
    const pool = await GrpcWorkerPool.connect([worker.address], workerSetupFor(plan), { runId: 'drain' });
    await search(plan, pool);
    await pool.close();
    worker.child.kill('SIGTERM');
    assert.equal(await worker.exited, 0);
    assert.match(worker.log(), /worker drained/);
    await assert.rejects(GrpcWorkerPool.connect([worker.address], workerSetupFor(plan), { runId: 'after', setupDeadlineMs: 2000 }), WorkerRefusedError);
  });

  for (const when of ['between rounds', 'while its batch is in flight'] as const) {
    it(`a worker process killed ${when} does not change the result: its states are rebuilt on the others`, async () => {
      const plan = resolveRunConfig({ budgetNfe: 20000, seed: 1 });
      const reference = decisions(await search(plan, inProcess(plan)));
      const workers = await startAll([0, 1, 2].map(() => startWorker('analytic:gmm')));
      try {
        const pool = await GrpcWorkerPool.connect(workers.map((w) => w.address), workerSetupFor(plan), { runId: 'kill' });
        let batches = 0;
        const killing: WorkerPool = {
          get size() {
            return pool.size;
          },
          describe: (i) => pool.describe(i),
          execute: async (i, commands) => {
            if (i === 1 && ++batches === 3) {
              workers[1]!.child.kill('SIGKILL');
              if (when === 'between rounds') await workers[1]!.exited;
              // In flight: the batch is sent as the process dies; either way the call must fail.
            }
            return pool.execute(i, commands);
          },
          close: () => pool.close(),
        };
        const dispatcher = new Dispatcher(killing);
        const outcome = await runSearch(createSearch(plan, createSampler(plan.sampler)), dispatcher, { population: 8 });
        await pool.close();
        assert.equal(workers[1]!.child.signalCode, 'SIGKILL');
        assert.deepEqual(decisions(outcome), reference);
        assert.equal(dispatcher.stats.lostWorkers, 1);
        assert.ok(dispatcher.stats.rebuiltStates > 0, 'nothing was rebuilt');
      } finally {
        await stopWorkers(workers);
      }
    });
  }
});

describe('gRPC workers: bad input does not crash a worker', () => {
  it('bad batches and setups are answered with errors naming the cause; the worker process then serves a run with the right answer', async () => {
    const [worker] = await startAll([startWorker('analytic:gmm')]);
    const plan = resolveRunConfig({ budgetNfe: 1000, seed: 6 });
    const size = loadModel(plan.model, { prediction: createSampler(plan.sampler).prediction }).denoiser.latentSize;
    const state = (latent: Float32Array) => ({ id: 7, step: 0, latent, previousX0: null, cachedOutput: null });
    const pool = await GrpcWorkerPool.connect([worker!.address], workerSetupFor(plan), { runId: 'bad-input' });
    const refused = async (commands: Command[], says: RegExp) =>
      assert.rejects(pool.execute(0, commands), (e: unknown) => e instanceof WorkerCommandError && says.test(e.message));
    const client = new grpc.Client(worker!.address, grpc.credentials.createInsecure());
    try {
      await refused([{ kind: 'advance', ids: [999], from: 0, to: 1, purpose: 'advance' }], /999/);
      await refused([{ kind: 'import', states: [{ as: 7, state: state(new Float32Array(size + 3)) }] }], new RegExp(`${size + 3} floats.*takes ${size}`));
      await refused([{ kind: 'import', states: [{ as: 7, state: state(new Float32Array(size).fill(Number.NaN)) }] }, { kind: 'advance', ids: [7], from: 0, to: 1, purpose: 'advance' }], /not finite/);
      const setup = workerService.setup;
      const refusedSetup = (message: Record<string, unknown> | null) =>
        new Promise<grpc.ServiceError | null>((resolve) => client.makeUnaryRequest(setup.path, setup.requestSerialize, setup.responseDeserialize, { runId: 'broken', setup: message }, new grpc.Metadata(), {}, (e) => resolve(e)));
      const good = setupToWire(workerSetupFor(plan));
      for (const [message, says] of [
        [null, /setup: missing/],
        [{ ...good, sampler: null }, /setup\.sampler: missing/],
        [{ ...good, sampler: {} }, /setup\.sampler: names no sampler/],
        [{ ...good, seed: '-1' }, /setup\.seed: must be the decimal digits/],
        [{ ...good, batchSize: 0 }, /setup\.batch_size: must be at least 1/],
        [{ ...good, sampler: setupToWire({ ...workerSetupFor(plan), sampler: { ...plan.sampler, steps: 0 } }).sampler }, /steps/],
      ] as const) {
        const error = await refusedSetup(message);
        assert.equal(error?.code, grpc.status.INVALID_ARGUMENT, `${JSON.stringify(message)}: ${error?.details}`);
        assert.match(error.details, says);
      }
      const m = workerService.execute;
      const executeCode = await new Promise<number>((resolve) => {
        const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), {});
        call.on('error', (e: grpc.ServiceError) => resolve(e.code));
        call.on('data', () => undefined);
        for (const frame of encodeFrames('no-such-run', 'commands', [{ kind: 'init', ids: [1] }])) call.write(frame);
        call.end();
      });
      assert.equal(executeCode, grpc.status.FAILED_PRECONDITION);
      assert.equal(worker!.child.exitCode, null, `the worker exited: ${worker!.log()}`);
      const fresh = await GrpcWorkerPool.connect([worker!.address], workerSetupFor(plan), { runId: 'after-bad-input' });
      assert.deepEqual(decisions(await search(plan, fresh)), decisions(await search(plan, inProcess(plan))));
      await fresh.close();
    } finally {
      client.close();
      await pool.close();
      await stopWorkers([worker!]);
    }
  });
});

describe('gRPC workers: bodies past the message limit', () => {
  it("a command list longer than gRPC's 4 MiB message limit reaches the worker and is answered (it was RESOURCE_EXHAUSTED)", async () => {
    const [worker] = await startAll([startWorker('analytic:gmm')]);
    const plan = resolveRunConfig({ budgetNfe: 1000, seed: 6 });
    const pool = await GrpcWorkerPool.connect([worker!.address], workerSetupFor(plan), { runId: 'large-body' });
    try {
      // A recovery's recipes for many states are such a body: here, states by the hundred thousand.
      const ids = Array.from({ length: 700_000 }, (_, i) => 1_000_000 + i);
      assert.ok(JSON.stringify(ids).length > 4 * 2 ** 20, 'the command list alone is past 4 MiB');
      const [init] = await pool.execute(0, [{ kind: 'init', ids }]);
      assert.equal(init!.kind, 'init');
      const [dropped] = await pool.execute(0, [{ kind: 'drop', ids }]);
      assert.equal(dropped!.kind, 'drop');
    } finally {
      await pool.close();
      await stopWorkers([worker!]);
    }
  });
});

describe('gRPC workers: state snapshots', () => {
  it('worker processes keep snapshots in their state folder, under the run (not the session): others sharing it resume with nothing recomputed; workers without them rebuild, with the same answer', async () => {
    const plan = resolveRunConfig({ budgetNfe: 4000, seed: 12 });
    const sampler = createSampler(plan.sampler);
    const shared = await mkdtemp(join(tmpdir(), 'grpc-state-'));
    const elsewhere = await mkdtemp(join(tmpdir(), 'grpc-state-elsewhere-'));
    const first = await startAll([0, 1].map(() => startWorker('analytic:gmm', ['--state-dir', shared])));
    const second = await startAll([0, 1, 2].map(() => startWorker('analytic:gmm', ['--state-dir', shared])));
    const third = await startAll([0, 1].map(() => startWorker('analytic:gmm', ['--state-dir', elsewhere])));
    // As runSearchToFolder sets them up: the session changes at a resume, the snapshot scope (the run id) does not.
    const setup = { ...workerSetupFor(plan), snapshotScope: 'snap' };
    try {
      const journal: JournalEntry[] = [];
      const snapshots: (TakenSnapshot | null)[] = [];
      const pool = await GrpcWorkerPool.connect(first.map((w) => w.address), setup, { runId: 'snap' });
      const uninterrupted = await runSearch(createSearch(plan, sampler), new Dispatcher(pool), { snapshots: true, onJournal: (e, s) => (journal.push(e), snapshots.push(s)) });
      await pool.close();
      const k = journal.length - 1;
      assert.ok(snapshots[k - 1] !== null && snapshots[k - 1]!.files.length === 2, 'the workers wrote no snapshot');
      // Where the workers put them: their state folder, the run's scope, the names the coordinator gave.
      const kept = await readdir(join(shared, 'snap'));
      for (const file of snapshots[k - 1]!.files) assert.ok(kept.includes(file.name), `${file.name} is not in the state folder: ${kept.join(', ')}`);

      const resumedPool = await GrpcWorkerPool.connect(second.map((w) => w.address), setup, { runId: 'snap.resume-1' });
      const dispatcher = new Dispatcher(resumedPool);
      const resumed = await runSearch(createSearch(plan, sampler), dispatcher, { replay: journal.slice(0, k), restore: snapshots[k - 1]!.files });
      await resumedPool.close();
      assert.deepEqual(decisions(resumed), decisions(uninterrupted));
      assert.equal(dispatcher.stats.rebuildCounters.nfe, 0);
      assert.ok(dispatcher.stats.restoredStates > 0);

      const problems: string[] = [];
      const otherPool = await GrpcWorkerPool.connect(third.map((w) => w.address), setup, { runId: 'snap.resume-2' });
      const rebuilding = new Dispatcher(otherPool, { onSnapshotProblem: (detail) => problems.push(detail) });
      const rebuilt = await runSearch(createSearch(plan, sampler), rebuilding, { replay: journal.slice(0, k), restore: snapshots[k - 1]!.files });
      await otherPool.close();
      assert.deepEqual(decisions(rebuilt), decisions(uninterrupted));
      assert.equal(rebuilding.stats.restoredStates, 0);
      assert.ok(rebuilding.stats.rebuiltStates > 0);
      assert.equal(problems.length, 2, problems.join('\n'));
      assert.ok(problems.every((p) => /snapshot 'round-\d+-worker-\d+\.bin': cannot be read \(ENOENT: this worker has no such snapshot\)/.test(p)), problems.join('\n'));
      assert.ok(problems.every((p) => !p.includes(elsewhere)), `a refusal shows the worker's folder: ${problems.join('\n')}`);
    } finally {
      await stopWorkers([...first, ...second, ...third]);
      await rm(shared, { recursive: true, force: true });
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});
