import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Objm } from '@nats-io/obj';
import { CHECKPOINTS_BUCKET } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import * as grpc from '@grpc/grpc-js';
import { CoordinatorClient, CoordinatorError } from '../coordinator/service/coordinator-client.js';
import { coordinatorService } from '../proto/coordinator-service.js';
import { MAX_MESSAGE_BYTES } from '../proto/grpc-limits.js';
import { PROTOCOL_VERSION } from '../proto/worker-service.js';
import { repoRoot } from './support/repo-root.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const execFileAsync = promisify(execFile);
const bin = () => join(repoRoot(), 'bin', 'evosearch.js');

describe('the coordinator service: one NATS, one coordinator, workers, runs submitted to it', () => {
  let nats: NatsServer;
  let coordinator: ChildProcess;
  let address: string;
  let dir: string;
  const workers: WorkerProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'coordinator-'));
    workers.push(...(await Promise.all([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url])))));
    coordinator = spawn(process.execPath, [bin(), 'coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--runs-dir', join(dir, 'served'), '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve) => createInterface({ input: coordinator.stdout! }).once('line', resolve));
    address = (JSON.parse(line) as { address: string }).address;
  });
  after(async () => {
    coordinator?.kill('SIGTERM');
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('evosearch run --cluster submits to the coordinator, follows it, and gets the local answer and the run folder', async () => {
    const args = ['run', '--budget-nfe', '3000', '--seed', '4', '--no-progress'];
    await execFileAsync(process.execPath, [bin(), ...args, '--out', join(dir, 'local')]);
    const { stdout } = await execFileAsync(process.execPath, [bin(), ...args, '--cluster', nats.url, '--out', join(dir, 'remote')]);
    assert.match(stdout, new RegExp(`submitted run [0-9a-f-]+ to coordinator ${address.replace(/\./g, '\\.')}`));
    const local = JSON.parse(await readFile(join(dir, 'local', 'record.json'), 'utf8')) as { best: unknown };
    const remote = JSON.parse(await readFile(join(dir, 'remote', 'record.json'), 'utf8')) as { best: unknown; workers: string[] };
    assert.deepEqual(remote.best, local.best);
    assert.equal(remote.workers.length, 2);
    const files = await readdir(join(dir, 'remote'));
    for (const f of ['record.json', 'config.json', 'best-sample.json', 'report.html', 'run.log']) assert.ok(files.includes(f), `${f} missing from ${files.join(', ')}`);
  });

  it('lists runs, streams a run\'s events, and cancels a run between rounds', async () => {
    const client = new CoordinatorClient(address);
    try {
      const { runId } = await client.submit({ budgetNfe: 400000, seed: 1 });
      const seen: string[] = [];
      const watching = client.watch(runId, (e) => {
        seen.push(e.event);
        if (e.event === 'round' && seen.filter((x) => x === 'round').length === 1) void client.cancel(runId);
      });
      const last = await watching;
      assert.equal(last.event, 'cancelled');
      assert.equal(seen[0], 'started');
      const listed = (await client.list()).runs.find((r) => r.runId === runId);
      assert.equal(listed?.state, 'cancelled');
      await assert.rejects(client.download(runId, join(dir, 'cancelled')), (e: unknown) => e instanceof CoordinatorError && /is cancelled/.test(e.message));
    } finally {
      client.close();
    }
  });

  it('a prompts file on the cluster: the searches share the workers at once, each gets its folder, and a summary covers them', async () => {
    const bundle = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
    workers.push(...(await Promise.all([0, 1].map(() => startWorker(bundle, ['--nats', nats.url])))));
    const prompts = join(dir, 'prompts.txt');
    await writeFile(prompts, ['# three held-out prompts', 'a small yellow square', 'two blue circles and a white circle', 'a green square right of a small purple triangle'].join('\n'));
    const out = join(dir, 'prompts');
    await execFileAsync(process.execPath, [bin(), 'run', '--cluster', nats.url, '--model', bundle, '--prompts', prompts, '--budget-nfe', '600', '--no-progress', '--out', out]);
    const folders = (await readdir(out, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    assert.equal(folders.length, 3, folders.join(', '));
    const spans = await Promise.all(folders.map(async (f) => {
      const record = JSON.parse(await readFile(join(out, f, 'record.json'), 'utf8')) as { startedAt: string; finishedAt: string; plan: { prompt: string }; workers: string[] };
      assert.equal(record.workers.length, 2, 'the tiny-sd workers, not the analytic ones');
      return [Date.parse(record.startedAt), Date.parse(record.finishedAt)] as const;
    }));
    const overlapping = spans.some(([a0, a1], i) => spans.some(([b0, b1], j) => i !== j && a0 < b1 && b0 < a1));
    assert.ok(overlapping, `the searches ran one after another: ${JSON.stringify(spans)}`);
    assert.ok((await readdir(out)).includes('report.html'), 'no summary report');
  });

  it('a worker that joins mid-run: the Watch stream gets the workers event, and the record and the CLI count it (they said "on 2 workers")', async () => {
    const analytic = workers.filter((w) => w.build === workers[0]!.build);
    const out = join(dir, 'joined');
    const child = spawn(process.execPath, [bin(), 'run', '--budget-nfe', '2000000', '--seed', '5', '--no-progress', '--cluster', nats.url, '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let runId: string | undefined;
    while ((runId = /submitted run ([0-9a-f-]+)/.exec(stdout)?.[1]) === undefined && child.exitCode === null) await sleep(20);
    const client = new CoordinatorClient(address);
    try {
      const events: { event: string; payload: Record<string, unknown> }[] = [];
      let joining: Promise<WorkerProcess> | undefined;
      await client.watch(runId!, (e) => {
        events.push(e);
        // Once the run has started, a third worker of the run's model comes up and registers; it joins
        // at the next look between rounds (the rounds of this budget last seconds each).
        if (e.event === 'started') joining ??= startWorker('analytic:gmm', ['--nats', nats.url]);
      });
      const joiner = await joining!;
      workers.push(joiner);
      assert.equal(await exited, 0);
      const joinedEvent = events.find((e) => e.event === 'workers');
      assert.ok(joinedEvent !== undefined, `no workers event on the Watch stream: ${events.map((e) => e.event).join(', ')}`);
      assert.deepEqual(joinedEvent.payload.added, [joiner.address]);
      const record = JSON.parse(await readFile(join(out, 'record.json'), 'utf8')) as { workers: string[]; workersJoined: number };
      assert.equal(record.workers.length, analytic.length + 1, record.workers.join(', '));
      assert.equal(record.workersJoined, 1);
      assert.match(stdout, new RegExp(`on ${analytic.length + 1} workers \\(1 joined mid-run\\)`));
    } finally {
      client.close();
    }
  });

  it('refuses a bad run configuration, naming the field', async () => {
    const client = new CoordinatorClient(address);
    try {
      await assert.rejects(client.submit({ budgetNfe: 10, method: 'evosearch' }), (e: unknown) => e instanceof CoordinatorError && /budgetNfe/.test(e.message));
      await assert.rejects(client.submit({ nonsense: true } as never), (e: unknown) => e instanceof CoordinatorError && /nonsense/.test(e.message));
      await assert.rejects(client.watch('no-such-run', () => undefined), (e: unknown) => e instanceof CoordinatorError && /no run no-such-run/.test(e.message));
      await assert.rejects(client.resume('no-such-run'), (e: unknown) => e instanceof CoordinatorError && e.status === grpc.status.NOT_FOUND && /no run no-such-run/.test(e.message));
    } finally {
      client.close();
    }
  });

  it('a client that sends a message past the service\'s limit is refused, and the coordinator serves on', async () => {
    // A hostile client without our limits: a 9 MiB Submit (the service takes at most MAX_MESSAGE_BYTES).
    const raw = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
    const m = coordinatorService.submit;
    try {
      const refused = await new Promise<grpc.ServiceError | null>((resolve) => {
        raw.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { protocolVersion: PROTOCOL_VERSION, configJson: JSON.stringify({ prompt: 'x'.repeat(MAX_MESSAGE_BYTES + 2 ** 20) }) }, (error) => resolve(error ?? null));
      });
      assert.equal(refused?.code, grpc.status.RESOURCE_EXHAUSTED, String(refused?.details));
    } finally {
      raw.close();
    }
    const client = new CoordinatorClient(address);
    try {
      assert.ok((await client.list()).runs.length > 0);
    } finally {
      client.close();
    }
  });
});

describe('the coordinator service killed -9 in the middle of a run', () => {
  it('the run resumes on another machine from its checkpoint in NATS, with the answer of the undisturbed run', async () => {
    const nats = await startNatsServer();
    const dir = await mkdtemp(join(tmpdir(), 'coordinator-kill-'));
    const workers = await Promise.all([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url])));
    const nc = await connectNats(nats.url, 'coordinator kill test');
    const coordinator = spawn(process.execPath, [bin(), 'coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--runs-dir', join(dir, 'machine-a'), '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => coordinator.once('exit', () => resolve()));
    try {
      await execFileAsync(process.execPath, [bin(), 'run', '--budget-nfe', '150000', '--seed', '9', '--no-progress', '--out', join(dir, 'local')]);
      const line = await new Promise<string>((resolve) => createInterface({ input: coordinator.stdout! }).once('line', resolve));
      const client = new CoordinatorClient((JSON.parse(line) as { address: string }).address);
      const { runId } = await client.submit({ budgetNfe: 150000, seed: 9 });
      client.close();
      // Kill once the run's first checkpoint is in NATS and before the run finishes.
      const objects = await new Objm(nc).create(CHECKPOINTS_BUCKET);
      while ((await objects.getBlob(`${runId}/manifest`)) === null && coordinator.exitCode === null) await sleep(10);
      assert.ok(!existsSync(join(dir, 'machine-a', runId, 'record.json')), 'the run finished before the kill: the test proves nothing');
      coordinator.kill('SIGKILL');
      await exited;
      const { stderr } = await execFileAsync(process.execPath, [bin(), 'resume', runId, '--cluster', nats.url, '--runs-dir', join(dir, 'machine-b'), '--no-progress']);
      assert.match(stderr, /fetched run .* checkpoint from nats:/);
      const local = JSON.parse(await readFile(join(dir, 'local', 'record.json'), 'utf8')) as { best: unknown; spent: unknown };
      const resumed = JSON.parse(await readFile(join(dir, 'machine-b', runId, 'record.json'), 'utf8')) as { best: unknown; spent: unknown };
      assert.deepEqual([resumed.best, resumed.spent], [local.best, local.spent]);
    } finally {
      coordinator.kill('SIGKILL');
      await closeNats(nc);
      await stopWorkers(workers);
      await nats.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
