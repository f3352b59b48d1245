import { WireError } from '../proto/wire-error.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Objm } from '@nats-io/obj';
import { CHECKPOINTS_BUCKET } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import * as grpc from '@grpc/grpc-js';
import { CoordinatorClient, CoordinatorError } from '../coordinator/service/coordinator-client.js';
import protobuf from 'protobufjs';
import { COORDINATOR_PROTOCOL_VERSION, coordinatorService, type FileChunk, type RunEventMessage, type SubmitReply } from '../proto/coordinator-service.js';
import { COORDINATOR_PROTO_FILE, coordinatorType, runConfigToWire, runEventOf, runEventToWire, type TypedRunEvent, type WireObject } from '../proto/coordinator-messages.js';
import { MAX_MESSAGE_BYTES } from '../proto/grpc-limits.js';
import { WorkerRegistration } from '../cluster/worker-registry.js';
import { startCoordinator } from './support/coordinator-process.js';
import { repoRoot } from './support/repo-root.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

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
    workers.push(...(await startAll([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url])))));
    ({ child: coordinator, address } = await startCoordinator(nats.url, join(dir, 'served')));
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
      const { runId, plan } = await client.submit({ budgetNfe: 400000, seed: 1 });
      assert.deepEqual([plan.method, plan.model, plan.seed, plan.budgetNfe], ['evosearch', 'analytic:gmm', 1, 400000]);
      assert.ok(plan.plannedNfe > 0 && plan.plannedNfe <= 400000, String(plan.plannedNfe));
      const seen: TypedRunEvent[] = [];
      const watching = client.watch(runId, (e) => {
        seen.push(e);
        if (e.event === 'round' && seen.filter((x) => x.event === 'round').length === 1) void client.cancel(runId);
      });
      const last = await watching;
      assert.equal(last.event, 'cancelled');
      assert.ok(last.event === 'cancelled' && /cancelled by a client/.test(last.payload.error), JSON.stringify(last));
      const [started, round] = seen;
      assert.ok(started?.event === 'started', JSON.stringify(started));
      assert.deepEqual([started.runId, started.payload.method, started.payload.budgetNfe, started.payload.plannedNfe, started.payload.workers.length], [runId, 'evosearch', 400000, plan.plannedNfe, 2]);
      assert.ok(round?.event === 'round' && round.payload.round === 0 && round.payload.nfe > 0 && typeof round.payload.best === 'number', JSON.stringify(round));
      assert.ok(seen.every((e) => !Number.isNaN(Date.parse(e.at))), 'every event says when');
      const listed = (await client.list()).runs.find((r) => r.runId === runId);
      assert.equal(listed?.state, 'cancelled');
      await assert.rejects(client.download(runId, join(dir, 'cancelled')), (e: unknown) => e instanceof CoordinatorError && /is cancelled/.test(e.message));
    } finally {
      client.close();
    }
  });

  it('a prompts file on the cluster: the searches share the workers at once, each gets its folder, and a summary covers them', async () => {
    const bundle = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
    workers.push(...(await startAll([0, 1].map(() => startWorker(bundle, ['--nats', nats.url])))));
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
    // The joiner is up and serving before the run starts, but not registered: it registers (as its
    // `--nats` would, with heartbeats) when the run has started, so its joining does not wait on a
    // process starting on a loaded machine (the run once ended first).
    const joiner = await startWorker('analytic:gmm');
    workers.push(joiner);
    const nc = await connectNats(nats.url, 'the joining worker');
    let registration: Promise<WorkerRegistration> | undefined;
    const out = join(dir, 'joined');
    const child = spawn(process.execPath, [bin(), 'run', '--budget-nfe', '2000000', '--seed', '5', '--no-progress', '--cluster', nats.url, '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let runId: string | undefined;
    while ((runId = /submitted run ([0-9a-f-]+)/.exec(stdout)?.[1]) === undefined && child.exitCode === null) await sleep(20);
    const client = new CoordinatorClient(address);
    try {
      const events: TypedRunEvent[] = [];
      await client.watch(runId!, (e) => {
        events.push(e);
        // Once the run has started, a third worker of the run's model registers; it joins at the next
        // look between rounds (the rounds of this budget last seconds each).
        if (e.event === 'started') registration ??= WorkerRegistration.register(nc, { id: 'the-joiner', address: joiner.address, model: 'analytic:gmm', build: joiner.build });
      });
      assert.equal(await exited, 0);
      const joinedEvent = events.find((e) => e.event === 'workers');
      assert.ok(joinedEvent?.event === 'workers', `no workers event on the Watch stream: ${events.map((e) => e.event).join(', ')}`);
      assert.ok(joinedEvent.payload.workers.includes(joiner.address));
      assert.deepEqual(joinedEvent.payload.added, [joiner.address]);
      const record = JSON.parse(await readFile(join(out, 'record.json'), 'utf8')) as { workers: string[]; workersJoined: number };
      assert.equal(record.workers.length, analytic.length + 1, record.workers.join(', '));
      assert.equal(record.workersJoined, 1);
      assert.match(stdout, new RegExp(`on ${analytic.length + 1} workers \\(1 joined mid-run\\)`));
    } finally {
      client.close();
      await (await registration)?.deregister();
      await closeNats(nc);
    }
  });

  it('Files serves a run folder only as the coordinator made it: a folder or a file swapped for a symbolic link is refused, and nothing it points at reaches the client', async () => {
    const client = new CoordinatorClient(address);
    const elsewhere = join(dir, 'elsewhere');
    try {
      const { runId } = await client.submit({ budgetNfe: 2000, seed: 6 });
      assert.equal((await client.watch(runId, () => undefined)).event, 'finished');
      const folder = join(dir, 'served', runId);
      await client.download(runId, join(dir, 'as-made'));
      assert.ok((await readdir(join(dir, 'as-made'))).includes('record.json'), 'the run as made is served');
      await mkdir(elsewhere);
      await writeFile(join(elsewhere, 'secret.txt'), 'not a run file');

      // The run folder swapped for a link to another folder (the probe served 68 files of /etc this way).
      await rename(folder, `${folder}.moved`);
      await symlink(elsewhere, folder);
      await assert.rejects(client.download(runId, join(dir, 'through-folder-link')), (e: unknown) => e instanceof CoordinatorError && e.status === grpc.status.FAILED_PRECONDITION && /its folder is a symbolic link, not the folder this coordinator made: not served/.test(e.message));
      assert.ok(!existsSync(join(dir, 'through-folder-link', 'secret.txt')), 'a file of the linked folder was served');
      await rm(folder);
      await rename(`${folder}.moved`, folder);

      // One file swapped for a link to a file outside the folder.
      await rm(join(folder, 'config.json'));
      await symlink(join(elsewhere, 'secret.txt'), join(folder, 'config.json'));
      await assert.rejects(client.download(runId, join(dir, 'through-file-link')), (e: unknown) => e instanceof CoordinatorError && e.status === grpc.status.FAILED_PRECONDITION && /its file config\.json is a symbolic link/.test(e.message));
      const leaked = existsSync(join(dir, 'through-file-link', 'config.json')) ? await readFile(join(dir, 'through-file-link', 'config.json'), 'utf8') : '';
      assert.ok(!leaked.includes('not a run file'), 'the linked file was served');
    } finally {
      client.close();
    }
  });

  it('refuses a bad run configuration, naming the field', async () => {
    const client = new CoordinatorClient(address);
    try {
      await assert.rejects(client.submit({ budgetNfe: 10, method: 'evosearch' }), (e: unknown) => e instanceof CoordinatorError && /budgetNfe/.test(e.message));
      // A key RunConfig has no field for cannot be sent: refused here, naming it, as a config error.
      await assert.rejects(client.submit({ nonsense: true } as never), (e: unknown) => e instanceof WireError && e.field === 'RunConfig.nonsense' && e.code === 'config');
      await assert.rejects(client.watch('no-such-run', () => undefined), (e: unknown) => e instanceof CoordinatorError && /no run no-such-run/.test(e.message));
      await assert.rejects(client.resume('no-such-run'), (e: unknown) => e instanceof CoordinatorError && e.status === grpc.status.NOT_FOUND && /no run no-such-run/.test(e.message));
    } finally {
      client.close();
    }
  });

  it("reads a submitted run's model only from its model roots: a bundle elsewhere, /etc or a missing folder is refused the same way before anything is read (it planned any path)", async () => {
    const client = new CoordinatorClient(address);
    try {
      const before = (await client.list()).runs.length;
      // A real bundle, reached through a link outside the roots: refused on its path, as a missing one is.
      const elsewhere = join(dir, 'elsewhere-tiny-sd');
      await symlink(join(repoRoot(), 'models', 'bundles', 'tiny-sd'), elsewhere);
      for (const model of [elsewhere, '/etc', join(dir, 'no-such-bundle'), `bundle:${join(repoRoot(), 'models', 'bundles', '..', '..', 'package.json')}`]) {
        await assert.rejects(client.submit({ model, budgetNfe: 600, seed: 1 }), (e: unknown) => {
          assert.ok(e instanceof CoordinatorError && e.status === grpc.status.INVALID_ARGUMENT, String(e));
          assert.match(e.message, /config\.model: ".*" is outside this coordinator's model roots; a coordinator loads models only from the folders its --model-root flags name \(default: the repository's models\/bundles\)/);
          assert.doesNotMatch(e.message, /no such file|ENOENT|manifest|"name"/);
          return true;
        });
      }
      assert.equal((await client.list()).runs.length, before, 'a refused submission made no run');
    } finally {
      client.close();
    }
  });

  it('refuses a malformed Submit from any client with INVALID_ARGUMENT naming the field, and a protocol 1 client with FAILED_PRECONDITION', async () => {
    // A client of another language, or a hostile one: the bytes are sent as they are, unchecked by ours.
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    const send = (bytes: Buffer) =>
      new Promise<grpc.ServiceError | null>((resolve) => raw.makeUnaryRequest(coordinatorService.submit.path, (b: Buffer) => b, (b: Buffer) => b, bytes, (error) => resolve(error ?? null)));
    const submitType = coordinatorType('SubmitRequest');
    const encode = (request: WireObject) => Buffer.from(submitType.encode(submitType.fromObject(request)).finish());
    try {
      const zeroSteps = await send(encode({ protocolVersion: COORDINATOR_PROTOCOL_VERSION, config: { sampler: { steps: 0 } } }));
      assert.equal(zeroSteps?.code, grpc.status.INVALID_ARGUMENT, String(zeroSteps?.details));
      assert.match(zeroSteps.details, /sampler\.steps/);
      const hugeSeed = await send(encode({ protocolVersion: COORDINATOR_PROTOCOL_VERSION, config: { seed: '18446744073709551615' } }));
      assert.equal(hugeSeed?.code, grpc.status.INVALID_ARGUMENT, String(hugeSeed?.details));
      assert.match(hugeSeed.details, /RunConfig\.seed/);
      const badMethod = await send(encode({ protocolVersion: COORDINATOR_PROTOCOL_VERSION, config: { method: 'hill-climbing' } }));
      assert.equal(badMethod?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(badMethod.details, /method/);
      const garbage = await send(Buffer.from([0x0a, 0xff, 0xff, 0xff]));
      assert.equal(garbage?.code, grpc.status.INVALID_ARGUMENT, String(garbage?.details));
      assert.match(garbage.details, /not a SubmitRequest message/);
      // The previous release's client: protocol 1, the configuration as JSON in field 2.
      const v1 = protobuf.parse('syntax = "proto3"; message SubmitRequest { uint32 protocol_version = 1; string config_json = 2; }').root.lookupType('SubmitRequest');
      const old = await send(Buffer.from(v1.encode(v1.fromObject({ protocolVersion: 1, configJson: '{"seed":1}' })).finish()));
      assert.equal(old?.code, grpc.status.FAILED_PRECONDITION, String(old?.details));
      assert.match(old.details, /coordinator protocol version 2, the client 1/);
    } finally {
      raw.close();
    }
  });

  it('a client that sends a message past the service\'s limit is refused, and the coordinator serves on', async () => {
    // A hostile client without our limits: a 9 MiB Submit (the service takes at most MAX_MESSAGE_BYTES).
    const raw = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
    const m = coordinatorService.submit;
    try {
      const refused = await new Promise<grpc.ServiceError | null>((resolve) => {
        raw.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { protocolVersion: COORDINATOR_PROTOCOL_VERSION, config: runConfigToWire({ prompt: 'x'.repeat(MAX_MESSAGE_BYTES + 2 ** 20) }) }, (error) => resolve(error ?? null));
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
    const workers = await startAll([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url])));
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

describe('a coordinator that sends what this client cannot read (a later release, or a broken one)', () => {
  let server: grpc.Server;
  let address: string;
  /** What the fake coordinator streams on Watch and Files, and answers to Submit. */
  let events: RunEventMessage[] = [];
  let reply: SubmitReply = { runId: '', plan: null };
  let fileChunks: FileChunk[] = [];

  before(async () => {
    server = new grpc.Server();
    server.addService(coordinatorService, {
      submit: (_call: unknown, done: grpc.sendUnaryData<SubmitReply>) => done(null, reply),
      watch: (call: grpc.ServerWritableStream<unknown, RunEventMessage>) => {
        for (const event of events) call.write(event);
        call.end();
      },
      cancel: () => undefined,
      list: () => undefined,
      files: (call: grpc.ServerWritableStream<unknown, FileChunk>) => {
        for (const chunk of fileChunks) call.write(chunk);
        call.end();
      },
      resume: () => undefined,
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  const AT = '2026-12-01T10:00:00.000Z';
  const started = runEventToWire(runEventOf('started', { method: 'evosearch', model: 'analytic:gmm', budgetNfe: 10, plannedNfe: 10, workers: [] }, 'r1', AT));

  it('an event without a payload (a kind this client does not know) ends the watch with an error naming it, after the events before it', async () => {
    // A later coordinator's event kind: encoded with a .proto that has it, it reaches this client as an unset payload.
    const later = protobuf.parse(readFileSync(COORDINATOR_PROTO_FILE, 'utf8').replace('    RunInterrupted interrupted = 17;', '    RunInterrupted interrupted = 17;\n    RunPaused paused = 90;').concat('\nmessage RunPaused { string reason = 1; }\n')).root.lookupType('evosearch.coordinator.v1.RunEvent');
    const paused = coordinatorService.watch.responseDeserialize(Buffer.from(later.encode(later.fromObject({ runId: 'r1', at: AT, paused: { reason: 'maintenance' } })).finish()));
    events = [started, paused];
    const client = new CoordinatorClient(address);
    try {
      const seen: string[] = [];
      await assert.rejects(client.watch('r1', (e) => seen.push(e.event)), (e: unknown) => e instanceof CoordinatorError && /RunEvent\.payload: missing/.test(e.message) && e.code === 'unavailable');
      assert.deepEqual(seen, ['started']);
    } finally {
      client.close();
    }
  });

  it("an event of another run, or one whose payload does not fit, ends the watch naming the field", async () => {
    const client = new CoordinatorClient(address);
    try {
      events = [runEventToWire(runEventOf('failed', { error: 'x' }, 'r2', AT))];
      await assert.rejects(client.watch('r1', () => undefined), (e: unknown) => e instanceof CoordinatorError && /RunEvent\.runId: 'r2', but the watched run is 'r1'/.test(e.message));
      events = [{ runId: 'r1', at: AT, finished: { wallMs: 3 } }];
      await assert.rejects(client.watch('r1', () => undefined), (e: unknown) => e instanceof CoordinatorError && /RunEvent\.finished\.spent: missing/.test(e.message));
    } finally {
      client.close();
    }
  });

  it('a file name with a separator or .. is refused before anything is written: nothing lands outside the download folder', async () => {
    const root = await mkdtemp(join(tmpdir(), 'download-'));
    const client = new CoordinatorClient(address);
    try {
      const out = join(root, 'nested', 'out');
      for (const name of ['../escaped.txt', '../../escaped.txt', 'sub/inner.txt', '..', `${root}/absolute.txt`, 'back\\slash.txt']) {
        fileChunks = [{ name: 'record.json', offset: 0, data: Buffer.from('{}'), last: true }, { name, offset: 0, data: Buffer.from('planted'), last: true }];
        await assert.rejects(client.download('r1', out), (e: unknown) => e instanceof CoordinatorError && /FileChunk\.name: .* is not a file name of a run folder/.test(e.message), name);
      }
      const everything = await readdir(root, { recursive: true });
      assert.ok(everything.every((f) => !/escaped|inner|absolute|slash/.test(f)), `written outside or under the download folder: ${everything.join(', ')}`);
    } finally {
      client.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a Submit reply without its plan or run id is an error naming the field', async () => {
    const client = new CoordinatorClient(address);
    try {
      reply = { runId: 'r1', plan: null };
      await assert.rejects(client.submit({ seed: 1 }), (e: unknown) => e instanceof CoordinatorError && /SubmitReply\.plan: missing/.test(e.message));
      reply = { runId: '', plan: { model: 'm', method: 'evosearch', preset: 'sd21', seed: 1, budgetNfe: 5, plannedNfe: 5 } };
      await assert.rejects(client.submit({ seed: 1 }), (e: unknown) => e instanceof CoordinatorError && /SubmitReply\.runId: missing/.test(e.message));
    } finally {
      client.close();
    }
  });
});
