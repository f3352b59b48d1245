import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { pino } from 'pino';
import { runSearchToFolder } from '../coordinator/run/run-search-to-folder.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { CHECKPOINTS_BUCKET, fetchCheckpoint } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { joinNewWorkers } from '../coordinator/transport/cluster-pool.js';
import protobuf from 'protobufjs';
import { EVENTS_PREFIX } from '../cluster/events.js';
import { COORDINATOR_PROTO_FILE, runEventFromJson, workerEventFromJson } from '../proto/coordinator-messages.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { GrpcWorkerPool } from '../coordinator/transport/grpc-pool.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { connectNats } from '../cluster/nats-connection.js';
import { HEARTBEAT_MS, liveWorkers, sweepStaleWorkers, WORKERS_BUCKET } from '../cluster/worker-registry.js';
import { Kvm } from '@nats-io/kv';
import { repoRoot } from './support/repo-root.js';
import { recordMessages, startNatsServer, type NatsServer, type RecordedMessage } from './support/nats-server.js';
import { waitFor } from './support/wait-for.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const execFileAsync = promisify(execFile);
const bin = () => join(repoRoot(), 'bin', 'evosearch.js');

describe('cluster over NATS: membership, discovery and events (real nats-server, real worker processes)', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let events: RecordedMessage[];
  const workers: WorkerProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    nc = await connectNats(nats.url, 'test');
    events = recordMessages(nc, `${EVENTS_PREFIX}.>`);
  });
  after(async () => {
    await stopWorkers(workers);
    await nc?.close();
    await nats?.stop();
  });

  it('workers register with heartbeats, are found, and a drained worker deregisters', async () => {
    workers.push(...(await startAll([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url])))));
    const live = await liveWorkers(nc);
    assert.deepEqual(live.map((w) => w.address).sort(), workers.map((w) => w.address).sort());
    const before = Date.parse(live[0]!.heartbeatAt);
    const heartbeatOf = async (id: string) => Date.parse((await liveWorkers(nc)).find((w) => w.id === id)?.heartbeatAt ?? '');
    await waitFor(async () => (await heartbeatOf(live[0]!.id)) > before, HEARTBEAT_MS + 500, `a heartbeat of worker ${live[0]!.id} after its ${live[0]!.heartbeatAt} one`, 100);
    const leaving = workers.pop()!;
    leaving.child.kill('SIGTERM');
    assert.equal(await leaving.exited, 0);
    assert.deepEqual((await liveWorkers(nc)).map((w) => w.address), [workers[0]!.address]);
    const joined = events.filter((e) => e.subject === `${EVENTS_PREFIX}.worker.joined`).map((e) => workerEventFromJson('joined', e.data));
    assert.ok(joined.some((e) => e.address === leaving.address) && joined.some((e) => e.address === workers[0]!.address), `joined events: ${JSON.stringify(joined)}`);
    // Each is the proto3 JSON of WorkerJoined: all its fields, nothing else.
    assert.deepEqual(Object.keys(events.find((e) => e.subject === `${EVENTS_PREFIX}.worker.joined`)!.data).sort(), ['address', 'at', 'build', 'id', 'model']);
    assert.ok(joined.every((e) => e.model === 'analytic:gmm' && e.build !== '' && !Number.isNaN(Date.parse(e.at))), JSON.stringify(joined));
    await waitFor(() => events.some((e) => e.subject === `${EVENTS_PREFIX}.worker.left` && e.data.address === leaving.address), 5000, `the worker.left event of ${leaving.address}`);
  });

  it('a killed worker goes stale; the sweep removes it and announces it lost', async () => {
    const doomed = await startWorker('analytic:gmm', ['--nats', nats.url]);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    // The scenario itself, not a wait for an event: the killed worker's last heartbeat has to grow
    // older than the sweep's threshold below (HEARTBEAT_MS + 500), and only time does that.
    await sleep(HEARTBEAT_MS + 800);
    const swept = await sweepStaleWorkers(nc, { staleAfterMs: HEARTBEAT_MS + 500 });
    assert.deepEqual(swept.map((w) => w.address), [doomed.address]);
    assert.ok(!(await liveWorkers(nc)).some((w) => w.address === doomed.address));
    await waitFor(() => events.some((e) => e.subject === `${EVENTS_PREFIX}.worker.lost` && e.data.address === doomed.address), 5000, `the worker.lost event of ${doomed.address}`);
  });

  it('an entry that is not a Member is never listed and the sweep deletes it; a Member another program wrote from the .proto is', async () => {
    const kv = await new Kvm(nc).open(WORKERS_BUCKET);
    const member = protobuf.loadSync(COORDINATOR_PROTO_FILE).lookupType('evosearch.coordinator.v1.Member');
    const now = new Date().toISOString();
    const foreign = member.toObject(member.fromObject({ id: 'py-worker', address: '127.0.0.1:1', model: 'a-pytorch-model', build: 'foreign-build', startedAt: now, heartbeatAt: now }), protobuf.util.toJSONOptions);
    await kv.put('py-worker', JSON.stringify(foreign));
    await kv.put('garbage', '{"id": 5, "address": "nowhere"}');
    await kv.put('not-json', 'hello');
    try {
      const listed = (await liveWorkers(nc)).map((w) => w.id);
      assert.ok(listed.includes('py-worker'), `listed: ${listed.join(', ')}`);
      assert.ok(!listed.includes('garbage') && !listed.includes('5'), `listed: ${listed.join(', ')}`);
      await sweepStaleWorkers(nc);
      for (const key of ['garbage', 'not-json']) assert.notEqual((await kv.get(key))?.operation, 'PUT', `${key} was not deleted`);
      assert.equal(await kv.get('py-worker').then((e) => e?.operation), 'PUT', 'a fresh Member stays');
    } finally {
      await kv.delete('py-worker');
    }
  });

  it('a cluster run that fails before its search (its checkpoint folder cannot be written) says so on NATS, and lets go of NATS', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cluster-early-failure-'));
    try {
      const blocker = join(dir, 'a-file');
      await writeFile(blocker, 'not a folder');
      const runId = 'fails-before-its-search';
      const plan = resolveRunConfig({ budgetNfe: 1000, cluster: nats.url });
      await assert.rejects(runSearchToFolder(plan, { folder: join(blocker, 'run'), logger: pino({ level: 'silent' }), runId }), /ENOTDIR/);
      await waitFor(() => events.some((e) => e.subject === `${EVENTS_PREFIX}.run.${runId}.failed`), 5000, `the failed event of run ${runId}`);
      const failed = runEventFromJson(events.find((e) => e.subject === `${EVENTS_PREFIX}.run.${runId}.failed`)!.data);
      assert.ok(failed.event === 'failed' && /ENOTDIR/.test(failed.payload.error), JSON.stringify(failed));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('evosearch run --cluster runs on the live workers of its model build, gives the local answer, and publishes run events', async () => {
    workers.push(await startWorker('analytic:gmm', ['--nats', nats.url]));
    workers.push(await startWorker('analytic:gmm?seed=2', ['--nats', nats.url]));
    const dir = await mkdtemp(join(tmpdir(), 'cluster-run-'));
    try {
      const args = ['run', '--budget-nfe', '2000', '--seed', '3', '--no-progress'];
      await execFileAsync(process.execPath, [bin(), ...args, '--out', join(dir, 'local')]);
      await execFileAsync(process.execPath, [bin(), ...args, '--cluster', nats.url, '--out', join(dir, 'cluster')]);
      const local = JSON.parse(await readFile(join(dir, 'local', 'record.json'), 'utf8')) as { best: unknown };
      const cluster = JSON.parse(await readFile(join(dir, 'cluster', 'record.json'), 'utf8')) as { best: unknown; runId: string; workers: string[]; rounds: unknown[] };
      assert.deepEqual(cluster.best, local.best);
      const sameBuild = workers.filter((w) => w.build === workers[0]!.build).map((w) => w.address).sort();
      assert.deepEqual(cluster.workers.map((w) => w.split(' ')[0]).sort(), sameBuild, 'the seed=2 worker serves another build and must not be used');
      const runEvents = `${EVENTS_PREFIX}.run.${cluster.runId}.`;
      await waitFor(() => events.some((e) => e.subject === `${runEvents}finished`), 5000, `the run.${cluster.runId}.finished event`);
      const mine = events.filter((e) => e.subject.startsWith(runEvents)).map((e) => e.subject.split('.').at(-1));
      assert.equal(mine[0], 'started');
      assert.equal(mine.at(-1), 'finished');
      assert.equal(mine.filter((e) => e === 'round').length, cluster.rounds.length);
      // Each is the proto3 JSON of a RunEvent: a subscriber decodes it with the .proto alone (plain protobufjs here) ...
      const runEvent = protobuf.loadSync(COORDINATOR_PROTO_FILE).lookupType('evosearch.coordinator.v1.RunEvent');
      for (const e of events.filter((x) => x.subject.startsWith(runEvents))) {
        assert.equal(runEvent.verify(runEvent.fromObject(e.data)), null, e.subject);
        assert.equal(runEvent.toObject(runEvent.fromObject(e.data), { oneofs: true }).payload, e.subject.split('.').at(-1), `${e.subject} carries another kind`);
      }
      // ... and its payload is the run's.
      const finished = runEventFromJson(events.find((e) => e.subject === `${runEvents}finished`)!.data);
      assert.ok(finished.event === 'finished' && finished.runId === cluster.runId);
      assert.equal(finished.payload.spent.nfe, (JSON.parse(await readFile(join(dir, 'cluster', 'record.json'), 'utf8')) as { spent: { nfe: number } }).spent.nfe);
      const lastRound = runEventFromJson(events.filter((e) => e.subject === `${runEvents}round`).at(-1)!.data);
      assert.ok(lastRound.event === 'round' && lastRound.payload.nfe === finished.payload.spent.nfe, JSON.stringify(lastRound));
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('workers that register during a run are added to its pool (right build only)', async () => {
    const plan = resolveRunConfig({ budgetNfe: 1000 });
    const first = workers.find((w) => w.build === workers[0]!.build)!;
    const pool = await GrpcWorkerPool.connect([first.address], workerSetupFor(plan), { runId: 'join' });
    try {
      const late = await startWorker('analytic:gmm', ['--nats', nats.url]);
      workers.push(late);
      const added = await joinNewWorkers(nc, pool, pool.build);
      assert.ok(added.includes(late.address), `added ${added.join(', ')}`);
      assert.ok(!added.some((a) => workers.some((w) => w.address === a && w.build !== pool.build)), 'a worker of another build joined');
      assert.ok(pool.addresses.includes(late.address));
      assert.deepEqual(await joinNewWorkers(nc, pool, pool.build), [], 'a second look adds nobody');
    } finally {
      await pool.close();
    }
  });

  it('NATS killed and restarted mid-run: the work goes on over gRPC, the answer is the local one, membership and events come back', async () => {
    const out = await mkdtemp(join(tmpdir(), 'nats-down-'));
    try {
      const args = ['run', '--budget-nfe', '300000', '--seed', '6', '--no-progress'];
      await execFileAsync(process.execPath, [bin(), ...args, '--out', join(out, 'local')]);
      const child = spawn(process.execPath, [bin(), ...args, '--cluster', nats.url, '--out', join(out, 'cluster')], { stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await waitFor(() => existsSync(join(out, 'cluster', 'checkpoint.json')) || child.exitCode !== null, 60_000, 'the cluster run to write its first checkpoint', 5);
      const wasRunning = child.exitCode === null;
      await nats.restart(1500);
      const back = Date.now();
      assert.equal(await exited, 0);
      assert.ok(wasRunning, 'the run ended before NATS went down: the test proves nothing');
      const local = JSON.parse(await readFile(join(out, 'local', 'record.json'), 'utf8')) as { best: unknown };
      const cluster = JSON.parse(await readFile(join(out, 'cluster', 'record.json'), 'utf8')) as { best: unknown };
      assert.deepEqual(cluster.best, local.best);
      // The mirror caught up: NATS has every round the folder has, so a resume from it works.
      const { runId } = JSON.parse(await readFile(join(out, 'cluster', 'checkpoint.json'), 'utf8')) as { runId: string };
      assert.equal(await fetchCheckpoint(nc, runId, join(out, 'fetched')), true);
      assert.equal(await readFile(join(out, 'fetched', 'journal.jsonl'), 'utf8'), await readFile(join(out, 'cluster', 'journal.jsonl'), 'utf8'));
      await execFileAsync(process.execPath, [bin(), 'resume', runId, '--cluster', nats.url, '--runs-dir', join(out, 'elsewhere'), '--no-progress']);
      const resumed = JSON.parse(await readFile(join(out, 'elsewhere', runId, 'record.json'), 'utf8')) as { best: unknown };
      assert.deepEqual(resumed.best, local.best);
      // The workers' heartbeats and the events resume once NATS is back.
      await waitFor(async () => (await liveWorkers(nc)).some((w) => Date.parse(w.heartbeatAt) > back), 2 * HEARTBEAT_MS + 5000, 'a worker heartbeat written after NATS came back', 100);
      const joiner = await startWorker('analytic:gmm', ['--nats', nats.url]);
      workers.push(joiner);
      await waitFor(() => events.some((e) => e.subject === `${EVENTS_PREFIX}.worker.joined` && e.data.address === joiner.address), 5000, `the worker.joined event of ${joiner.address}, after NATS came back`);
    } finally {
      await rm(out, { recursive: true });
    }
  });

  it('a cluster run killed -9 resumes on another machine from its checkpoint in NATS, with the local answer', async () => {
    const out = await mkdtemp(join(tmpdir(), 'nats-resume-'));
    try {
      const args = ['run', '--budget-nfe', '150000', '--seed', '8', '--no-progress'];
      await execFileAsync(process.execPath, [bin(), ...args, '--out', join(out, 'local')]);
      const first = join(out, 'machine-a');
      const child = spawn(process.execPath, [bin(), ...args, '--cluster', nats.url, '--out', first], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await waitFor(() => existsSync(join(first, 'checkpoint.json')) || child.exitCode !== null, 60_000, 'the cluster run to write its first checkpoint', 5);
      const runId = (JSON.parse(await readFile(join(first, 'checkpoint.json'), 'utf8')) as { runId: string }).runId;
      // The mirror to NATS trails the local checkpoint by up to a round: kill once NATS has one.
      const objects = await new Objm(nc).create(CHECKPOINTS_BUCKET);
      await waitFor(async () => (await objects.getBlob(`${runId}/manifest`)) !== null || child.exitCode !== null, 60_000, `run ${runId}'s manifest in NATS`);
      assert.equal(child.exitCode, null, 'the run ended before the kill: the test proves nothing');
      child.kill('SIGKILL');
      await exited;
      await rm(first, { recursive: true });
      // "Another machine": nothing of the run on disk, only the cluster.
      const { stderr } = await execFileAsync(process.execPath, [bin(), 'resume', runId, '--cluster', nats.url, '--runs-dir', join(out, 'machine-b'), '--no-progress']);
      assert.match(stderr, /fetched run .* checkpoint from nats:/);
      const local = JSON.parse(await readFile(join(out, 'local', 'record.json'), 'utf8')) as { best: unknown; spent: unknown };
      const resumed = JSON.parse(await readFile(join(out, 'machine-b', runId, 'record.json'), 'utf8')) as { best: unknown; spent: unknown };
      assert.deepEqual([resumed.best, resumed.spent], [local.best, local.spent]);
      const missing = await execFileAsync(process.execPath, [bin(), 'resume', 'no-such-run', '--cluster', nats.url, '--runs-dir', join(out, 'machine-b')]).then(() => null, (e: { code: number; stderr: string }) => e);
      assert.equal(missing?.code, 3);
      assert.match(missing!.stderr, /no checkpoint of run 'no-such-run'/);
    } finally {
      await rm(out, { recursive: true });
    }
  });

  it('a run whose model build no live worker serves fails, saying which workers there are', async () => {
    const result = await execFileAsync(process.execPath, [bin(), 'run', '--model', 'analytic:gmm?seed=9', '--budget-nfe', '1000', '--no-progress', '--cluster', nats.url, '--out', join(tmpdir(), 'no-such-run')]).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    assert.ok(result !== null, 'the run succeeded without workers');
    assert.equal(result.code, 3);
    assert.match(result.stderr, /no live worker registered at nats:\/\/.* serves analytic:gmm\?seed=9 build sha256:/);
    assert.match(result.stderr, /live workers: 127\.0\.0\.1:/);
  });
});
