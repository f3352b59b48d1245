import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CoordinatorClient } from '../coordinator/service/coordinator-client.js';
import type { TypedRunEvent } from '../proto/coordinator-messages.js';
import { EVOSEARCH_BIN } from './support/evosearch-cli.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const execFileAsync = promisify(execFile);

interface Coordinator {
  readonly child: ChildProcess;
  readonly address: string;
  readonly exited: Promise<number | null>;
}

interface Client {
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

const best = async (folder: string) => {
  const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as { best: unknown; spent: unknown };
  return [record.best, record.spent];
};

describe('a coordinator stopped, killed or restarted under a running client', () => {
  let nats: NatsServer;
  let dir: string;
  const coordinators: Coordinator[] = [];
  const workers: WorkerProcess[] = [];
  const args = ['--budget-nfe', '200000', '--seed', '4', '--no-progress'];
  let undisturbed: unknown;

  async function startCoordinator(): Promise<Coordinator> {
    const child = spawn(process.execPath, [EVOSEARCH_BIN, 'coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--runs-dir', join(dir, 'served'), '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const coordinator = { child, address: (JSON.parse(line) as { address: string }).address, exited };
    coordinators.push(coordinator);
    return coordinator;
  }

  function startClient(out: string): Client {
    const child = spawn(process.execPath, [EVOSEARCH_BIN, 'run', ...args, '--cluster', nats.url, '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    return { stdout: () => stdout, stderr: () => stderr, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  }

  /** The served run's folder once it has two rounds checkpointed (so a stop finds it mid-run). */
  async function midRun(client: Client): Promise<{ runId: string; folder: string }> {
    for (let waited = 0; waited < 60_000; waited += 20) {
      const runId = /submitted run ([0-9a-f-]+)/.exec(client.stdout())?.[1];
      const folder = runId === undefined ? null : join(dir, 'served', runId);
      if (folder !== null && existsSync(join(folder, 'journal.jsonl')) && readFileSync(join(folder, 'journal.jsonl'), 'utf8').split('\n').filter((l) => l !== '').length >= 2) return { runId: runId!, folder };
      await sleep(20);
    }
    assert.fail(`no round checkpointed: ${client.stdout()}${client.stderr()}`);
  }

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'coordinator-stop-'));
    workers.push(...(await startAll([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url])))));
    await execFileAsync(process.execPath, [EVOSEARCH_BIN, 'run', ...args, '--out', join(dir, 'local')]);
    undisturbed = await best(join(dir, 'local'));
  });
  after(async () => {
    for (const c of coordinators) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('stopped: the client is told the one command that continues the run, and with no coordinator left that command finishes it from NATS (it said only "cancelled")', async () => {
    const coordinator = await startCoordinator();
    const out = join(dir, 'remote-1');
    const client = startClient(out);
    const { runId } = await midRun(client);
    coordinator.child.kill('SIGTERM');
    assert.equal(await coordinator.exited, 0);
    assert.equal(await client.exited, 3, client.stderr());
    assert.match(client.stderr(), /interrupted: .*the coordinator is stopping; its last complete round is checkpointed: continue it with `evosearch resume /);
    const command = /`evosearch resume ([^`]+)`/.exec(client.stderr())![1]!;
    assert.equal(command, `${runId} --cluster ${nats.url} --out ${out}`);
    // No coordinator runs now: this process resumes the run over the cluster's workers, from NATS.
    const { stderr } = await execFileAsync(process.execPath, [EVOSEARCH_BIN, 'resume', ...command.split(' '), '--runs-dir', join(dir, 'elsewhere'), '--no-progress']);
    assert.match(stderr, /fetched run .* checkpoint from nats:/);
    assert.deepEqual(await best(out), undisturbed);
  });

  it('restarted: the coordinator serves the runs it knew (List, Watch, Files), and continues an interrupted one by id (it forgot them)', async () => {
    const first = await startCoordinator();
    const out = join(dir, 'remote-2');
    const client = startClient(out);
    const { runId } = await midRun(client);
    first.child.kill('SIGTERM');
    await first.exited;
    assert.equal(await client.exited, 3, client.stderr());
    const command = /`evosearch resume ([^`]+)`/.exec(client.stderr())![1]!;

    const second = await startCoordinator();
    const service = new CoordinatorClient(second.address);
    try {
      const listed = (await service.list()).runs;
      assert.ok(listed.some((r) => r.state === 'interrupted' && r.runId === runId), `after the restart: ${JSON.stringify(listed)}`);
      const events: string[] = [];
      await service.watch(runId, (e) => events.push(e.event));
      assert.equal(events.at(-1), 'interrupted');
      assert.ok(events.includes('round'), events.join(', '));
      // The command the client was given: a coordinator knows the run, so it goes on there.
      const { stdout } = await execFileAsync(process.execPath, [EVOSEARCH_BIN, 'resume', ...command.split(' '), '--no-progress']);
      assert.match(stdout, new RegExp(`resumed run ${runId} on coordinator`));
      assert.deepEqual(await best(out), undisturbed);
      assert.ok(!(await readdir(out)).some((f) => f === 'served.json' || f === 'events.jsonl' || f === '.evosearch.lock'), 'the service\'s own files were sent to the client');
      assert.equal((await service.list()).runs.find((r) => r.runId === runId)?.state, 'finished');
      // Finished: a second resume is refused, saying why.
      const again = await execFileAsync(process.execPath, [EVOSEARCH_BIN, 'resume', runId, '--cluster', nats.url, '--out', join(dir, 'again')]).then(() => null, (e: { code: number; stderr: string }) => e);
      assert.ok(again !== null && again.code === 3 && /is finished: nothing to resume/.test(again.stderr), again?.stderr);
    } finally {
      service.close();
    }
    second.child.kill('SIGTERM');
    await second.exited;
    // A third start still knows both runs, and serves the finished one's files.
    const third = await startCoordinator();
    const later = new CoordinatorClient(third.address);
    try {
      assert.ok((await later.list()).runs.some((r) => r.runId === runId && r.state === 'finished'));
      const files = await later.download(runId, join(dir, 'downloaded'));
      assert.ok(files.includes('record.json'), files.join(', '));
    } finally {
      later.close();
      third.child.kill('SIGTERM');
      await third.exited;
    }
  });

  it('killed -9: the client says it lost the coordinator and how to go on; the restarted coordinator marks the run interrupted and continues it by id', async () => {
    const first = await startCoordinator();
    const out = join(dir, 'remote-3');
    const client = startClient(out);
    const { runId } = await midRun(client);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(await client.exited, 3, client.stderr());
    assert.match(client.stderr(), new RegExp(`lost the coordinator while it ran run ${runId} .*continue it with \`evosearch resume ${runId} --cluster `));
    const second = await startCoordinator();
    const service = new CoordinatorClient(second.address);
    try {
      const events: TypedRunEvent[] = [];
      await service.watch(runId, (e) => events.push(e));
      const last = events.at(-1);
      assert.equal(last?.event, 'interrupted');
      assert.match(last.payload.error, /ended without stopping it/);
      assert.equal(last.payload.resume, `evosearch resume ${runId} --cluster ${nats.url}`);
      const command = /`evosearch resume ([^`]+)`/.exec(client.stderr())![1]!;
      // The dead coordinator's registration is still fresh in NATS: the resume must pass over it.
      const { stdout } = await execFileAsync(process.execPath, [EVOSEARCH_BIN, 'resume', ...command.split(' '), '--no-progress']);
      assert.match(stdout, new RegExp(`resumed run ${runId} on coordinator ${second.address.replace(/\./g, '\\.')}`));
      assert.deepEqual(await best(out), undisturbed);
    } finally {
      service.close();
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
