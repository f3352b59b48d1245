/**
 * Mutual TLS on every gRPC hop (proto/transport-security.ts), on real processes: certificates made by
 * `evosearch certs`; workers and a coordinator serving over mTLS; plaintext clients, clients of another
 * CA and peers of the wrong role refused; a denoising worker reaching its reward worker over mTLS with
 * its own certificate; each client seeing only its own runs on the coordinator, an admin all of them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { GrpcWorkerPool, WorkerRefusedError } from '../coordinator/transport/grpc-pool.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { CoordinatorClient, CoordinatorError } from '../coordinator/service/coordinator-client.js';
import { planRun } from '../config/plan-run.js';
import { resolveRunConfig, type RunPlan } from '../config/resolve-run-config.js';
import type { WorkerPool } from '../proto/worker-pool.js';
import type { TransportSecurity } from '../proto/transport-security.js';
import { createSampler } from '../samplers/index.js';
import { loadTlsIdentity } from '../security/tls-identity.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';
import { repoRoot } from './support/repo-root.js';
import { startCoordinator } from './support/coordinator-process.js';
import { searchDecisions } from './support/search-decisions.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';
import * as grpc from '@grpc/grpc-js';

const run = promisify(execFile);
const bin = join(repoRoot(), 'bin', 'evosearch.js');
/** The suite runs with EVOSEARCH_INSECURE=1 (package.json); these processes must choose for themselves. */
const { EVOSEARCH_INSECURE: _insecure, ...strictEnv } = process.env;

async function evosearch(args: readonly string[], env: NodeJS.ProcessEnv = strictEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [bin, ...args], { env, timeout: 180_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
}

const tls = (dir: string, name: string) => ['--tls-ca', join(dir, 'ca.crt'), '--tls-cert', join(dir, `${name}.crt`), '--tls-key', join(dir, `${name}.key`)];
const identity = (dir: string, name: string): TransportSecurity => ({ kind: 'mtls', identity: loadTlsIdentity({ ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }) });

function inProcess(plan: RunPlan): WorkerPool {
  const sampler = createSampler(plan.sampler);
  return new InProcessPool([new CommandExecutor(loadModel(plan.model, { prediction: sampler.prediction }), sampler, BigInt(plan.seed), { batchSize: plan.batchSize })]);
}

async function search(plan: RunPlan, pool: WorkerPool) {
  return runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(pool));
}

describe('mutual TLS on every gRPC hop (real processes, certificates from evosearch certs)', () => {
  let dir: string;
  let certs: string;
  let otherCa: string;
  const workers: WorkerProcess[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'evosearch-tls-'));
    certs = join(dir, 'certs');
    otherCa = join(dir, 'other');
    const made = await evosearch(['certs', '--out', certs, '--worker', 'w1', '--worker', 'w2', '--coordinator', 'c1', '--client', 'alice', '--client', 'bob', '--admin', 'ops']);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /worker w1: --tls-ca .*ca\.crt --tls-cert .*w1\.crt --tls-key .*w1\.key/);
    assert.equal((await evosearch(['certs', '--out', otherCa, '--coordinator', 'intruder'])).code, 0);
    workers.push(await startWorker('analytic:gmm', tls(certs, 'w1')), await startWorker('analytic:gmm', tls(certs, 'w2')));
  });
  after(async () => {
    await stopWorkers(workers);
    await rm(dir, { recursive: true, force: true });
  });

  it('a search over two mTLS workers gives the in-process answer', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1500, seed: 4 });
    const pool = await GrpcWorkerPool.connect(workers.map((w) => w.address), workerSetupFor(plan), { runId: 'tls', transport: identity(certs, 'c1') });
    try {
      assert.deepEqual(searchDecisions(await search(plan, pool)), searchDecisions(await search(plan, inProcess(plan))));
    } finally {
      await pool.close();
    }
  });

  it('refuses a plaintext coordinator, one of another CA, and a client certificate, each saying why', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1000 });
    const refused = async (transport: TransportSecurity | undefined, says: RegExp) =>
      assert.rejects(GrpcWorkerPool.connect([workers[0]!.address], workerSetupFor(plan), { runId: 'refused', setupDeadlineMs: 10_000, ...(transport ? { transport } : {}) }), (e: unknown) => e instanceof WorkerRefusedError && says.test(e.message));
    await refused(undefined, /UNAVAILABLE/);
    await refused(identity(otherCa, 'intruder'), /UNAVAILABLE/);
    await refused(identity(certs, 'alice'), /PERMISSION_DENIED: this worker serves coordinator and worker peers; the caller is client 'alice'/);
    // And the other way: a worker is not what a coordinator client expects to reach.
    const wrongServer = new CoordinatorClient(workers[0]!.address, identity(certs, 'alice'), 10_000);
    try {
      await assert.rejects(wrongServer.list(), (e: unknown) => e instanceof CoordinatorError && /is worker 'w1', not a coordinator/.test(e.message));
    } finally {
      wrongServer.close();
    }
  });

  it('plaintext is loopback only, and a gRPC command without certificates or --insecure says how to get them', async () => {
    const open = await evosearch(['worker', '--model', 'analytic:gmm', '--listen', '0.0.0.0:0', '--insecure']);
    assert.equal(open.code, 2, open.stderr);
    assert.match(open.stderr, /cannot serve plaintext gRPC on 0\.0\.0\.0:0: plaintext is for loopback addresses only/);
    const bare = await evosearch(['worker', '--model', 'analytic:gmm']);
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /needs the cluster's certificates \(`evosearch certs/);
    const wrongRole = await evosearch(['worker', '--model', 'analytic:gmm', ...tls(certs, 'alice')]);
    assert.equal(wrongRole.code, 2, wrongRole.stderr);
    assert.match(wrongRole.stderr, /alice\.crt is the certificate of client 'alice'; this command needs a worker certificate/);
    const mixed = await evosearch(['worker', '--model', 'analytic:gmm', '--tls-ca', join(certs, 'ca.crt'), '--tls-cert', join(otherCa, 'intruder.crt'), '--tls-key', join(otherCa, 'intruder.key')]);
    assert.equal(mixed.code, 2, mixed.stderr);
    assert.match(mixed.stderr, /intruder\.crt: was not signed by the CA in .*ca\.crt/);
    const half = await evosearch(['run', '--workers-at', workers[0]!.address, '--budget-nfe', '1000', '--tls-ca', join(certs, 'ca.crt'), '--out', join(dir, 'half')]);
    assert.equal(half.code, 2, half.stderr);
    assert.match(half.stderr, /--tls-cert, --tls-key: missing/);
    const reused = await evosearch(['certs', '--out', certs, '--worker', 'w1']);
    assert.equal(reused.code, 2, reused.stderr);
    assert.match(reused.stderr, /w1\.crt exists: a certificate is never overwritten/);
  });

  it('denoising workers reach their reward worker over mTLS with their own certificates', async () => {
    const bundle = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
    const plan = await planRun({ model: bundle, prompt: 'a small yellow square', budgetNfe: 400, seed: 8 }, 'test');
    const roles = await startAll([startWorker(bundle, ['--role', 'denoise', ...tls(certs, 'w1')]), startWorker(bundle, ['--role', 'reward', ...tls(certs, 'w2')])]);
    try {
      const pool = await GrpcWorkerPool.connect(roles.map((w) => w.address), workerSetupFor(plan), { runId: 'tls-roles', transport: identity(certs, 'c1') });
      try {
        const outcome = await search(plan, pool);
        assert.ok(outcome.best !== null);
        const health = await pool.health();
        assert.ok(health[1]!.batches > 0, `the reward worker scored nothing: ${JSON.stringify(health)}`);
      } finally {
        await pool.close();
      }
    } finally {
      await stopWorkers(roles);
    }
  });
});

describe('the coordinator over mTLS: each client sees only its own runs', () => {
  let nats: NatsServer;
  let dir: string;
  let certs: string;
  let coordinator: ChildProcess;
  let address: string;
  let worker: WorkerProcess;

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'evosearch-tls-coordinator-'));
    certs = join(dir, 'certs');
    assert.equal((await evosearch(['certs', '--out', certs, '--worker', 'w1', '--coordinator', 'c1', '--client', 'alice', '--client', 'bob', '--admin', 'ops'])).code, 0);
    worker = await startWorker('analytic:gmm', ['--nats', nats.url, ...tls(certs, 'w1')]);
    ({ child: coordinator, address } = await startCoordinator(nats.url, join(dir, 'served'), tls(certs, 'c1'), strictEnv));
  });
  after(async () => {
    coordinator?.kill('SIGTERM');
    await stopWorkers(worker ? [worker] : []);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("alice's run over the cluster: bob can neither list, watch, cancel nor download it; an admin can; plaintext is refused", async () => {
    const out = join(dir, 'alice-run');
    const submitted = await evosearch(['run', '--cluster', nats.url, '--budget-nfe', '1000', '--seed', '2', '--no-progress', '--out', out, ...tls(certs, 'alice')]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const runId = /submitted run (\S+) to coordinator/.exec(submitted.stdout)?.[1];
    assert.ok(runId !== undefined, submitted.stdout);
    assert.ok((await readdir(out)).includes('record.json'), 'alice got her files');
    const as = (name: string) => new CoordinatorClient(address, identity(certs, name), 20_000);
    const alice = as('alice');
    const bob = as('bob');
    const ops = as('ops');
    try {
      assert.deepEqual((await alice.list()).runs.map((r) => r.runId), [runId]);
      assert.deepEqual((await bob.list()).runs, [], "bob sees none of alice's runs");
      const notFound = (e: unknown) => e instanceof CoordinatorError && e.status === grpc.status.NOT_FOUND;
      await assert.rejects(bob.cancel(runId), notFound);
      await assert.rejects(bob.download(runId, join(dir, 'bob-took')), notFound);
      await assert.rejects(bob.watch(runId, () => undefined), notFound);
      assert.deepEqual((await ops.list()).runs.map((r) => r.runId), [runId], 'an admin sees every run');
    } finally {
      for (const c of [alice, bob, ops]) c.close();
    }
    const plaintext = new CoordinatorClient(address.replace(/^[^:]+/, '127.0.0.1'), undefined, 10_000);
    try {
      await assert.rejects(plaintext.list(), (e: unknown) => e instanceof CoordinatorError && e.status === grpc.status.UNAVAILABLE);
    } finally {
      plaintext.close();
    }
  });
});
