import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { EVOSEARCH_BIN } from './support/evosearch-cli.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const execFileAsync = promisify(execFile);

describe('a coordinator stopped under a running client', () => {
  let nats: NatsServer;
  let coordinator: ChildProcess;
  let dir: string;
  const workers: WorkerProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'coordinator-stop-'));
    workers.push(...(await Promise.all([0, 1].map(() => startWorker('analytic:gmm', ['--nats', nats.url])))));
    coordinator = spawn(process.execPath, [EVOSEARCH_BIN, 'coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--runs-dir', join(dir, 'served'), '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<string>((resolve) => createInterface({ input: coordinator.stdout! }).once('line', resolve));
  });
  after(async () => {
    if (coordinator.exitCode === null) coordinator.kill('SIGKILL');
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('the client is told the run is checkpointed and how to continue it, and that command finishes it (it said only "cancelled")', async () => {
    const args = ['--budget-nfe', '200000', '--seed', '4', '--no-progress'];
    const client = spawn(process.execPath, [EVOSEARCH_BIN, 'run', ...args, '--cluster', nats.url, '--out', join(dir, 'remote')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    client.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    client.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => client.once('exit', (code) => resolve(code)));
    // Once the served run has a round checkpointed, stop its coordinator.
    let folder: string | null = null;
    for (let waited = 0; waited < 60_000 && folder === null; waited += 20) {
      const id = /submitted run ([0-9a-f-]+)/.exec(stdout)?.[1];
      const candidate = id === undefined ? null : join(dir, 'served', id);
      if (candidate !== null && existsSync(join(candidate, 'journal.jsonl')) && readFileSync(join(candidate, 'journal.jsonl'), 'utf8').split('\n').filter((l) => l !== '').length >= 2) folder = candidate;
      else await sleep(20);
    }
    assert.ok(folder !== null, `no round checkpointed: ${stdout}${stderr}`);
    coordinator.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 3, stderr);
    assert.match(stderr, /cancelled: .*the coordinator is stopping; its last complete round is checkpointed on the coordinator's machine: continue it there with `evosearch resume /);
    const command = /`evosearch resume ([^`]+)`/.exec(stderr)![1]!;
    assert.equal(command, folder);
    // The command the client was given finishes the run, with the answer of an undisturbed run.
    await execFileAsync(process.execPath, [EVOSEARCH_BIN, 'resume', command, '--workers', '2', '--no-progress']);
    await execFileAsync(process.execPath, [EVOSEARCH_BIN, 'run', ...args, '--out', join(dir, 'local')]);
    const best = async (f: string) => (JSON.parse(await readFile(join(f, 'record.json'), 'utf8')) as { best: unknown }).best;
    assert.deepEqual(await best(folder), await best(join(dir, 'local')));
  });
});
