/**
 * Limits instead of crashes: plans past the memory, thread, population or record limits are refused
 * before any work, with the limit, the value asked and the flag that changes it; signals end `worker`
 * and `run` within seconds; resume's and the worker's flags are checked as run's are. Real
 * `evosearch` processes, real worker processes, real signals.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fetchWorkerHealth } from '../proto/worker-client.js';
import { threadLimit } from '../worker/runtime/host-limits.js';
import { evosearch, EVOSEARCH_BIN } from './support/evosearch-cli.js';
import { repoRoot } from './support/repo-root.js';
import { waitFor } from './support/wait-for.js';

const root = repoRoot();
const tinySd = join(root, 'models', 'bundles', 'tiny-sd');

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Milliseconds from start (or from `since`, when the test set it) to the exit. */
  readonly ms: number;
}

interface Running {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** The exit, or null when the process was still running after `ms` (it is then killed). */
  readonly exitWithin: (ms: number) => Promise<Exit | null>;
  readonly exited: Promise<Exit>;
}

function start(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Running {
  const started = Date.now();
  const child = spawn(process.execPath, [EVOSEARCH_BIN, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - started })));
  const exitWithin = async (ms: number): Promise<Exit | null> => {
    const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), ms).unref());
    const result = await Promise.race([exited, timer]);
    if (result === null) {
      child.kill('SIGKILL');
      await exited;
    }
    return result;
  };
  return { child, stdout: () => out, stderr: () => err, exitWithin, exited };
}

/** A worker process listening on a free port: its address once it prints its listening line. */
async function startWorker(args: readonly string[]): Promise<Running & { address: string }> {
  const running = start(['worker', '--listen', '127.0.0.1:0', ...args]);
  const lines = createInterface({ input: running.child.stdout! });
  const line = await Promise.race([
    new Promise<string>((resolve) => lines.once('line', resolve)),
    running.exited.then((e) => Promise.reject(new Error(`worker exited (${e.code ?? e.signal}) before listening: ${running.stderr()}`))),
  ]);
  return { ...running, address: (JSON.parse(line) as { address: string }).address };
}

const noStack = (stderr: string) => assert.doesNotMatch(stderr, /\n\s+at |FATAL ERROR|Invalid array length|heap out of memory/, stderr);

describe('plans past a limit are refused before any work, naming the limit, the value and the flag', () => {
  it('--budget-nfe 1000000000000 is refused at once by the run record limit (it ended in "Invalid array length")', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'limits-')), 'run');
    const r = start(['run', '--budget-nfe', '1000000000000', '--no-progress', '--out', out]);
    const exit = await r.exitWithin(20_000);
    assert.ok(exit !== null, 'still running after 20 s');
    assert.equal(exit.code, 4, r.stderr());
    assert.match(r.stderr(), /^evosearch: run record limit: --budget-nfe 1000000000000 makes EvoSearch's plan \(populations \[8400000000, /m);
    assert.match(r.stderr(), /past 512 MiB \(the longest string V8 makes/);
    assert.match(r.stderr(), /lower --budget-nfe \(config field budgetNfe\) to at most about \d/);
    noStack(r.stderr());
    assert.equal(existsSync(out), false, 'nothing was made before the refusal');
  });

  it('a population given directly names its own flag and field', async () => {
    const r = await evosearch(['run', '--method', 'best-of-n', '--samples', '100000000', '--no-progress']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^evosearch: \w[\w ]* limit: --samples 100000000 makes Best-of-N's plan \(n = 100,000,000 samples\)/m);
    assert.match(r.stderr, /lower --samples \(config field bestOfN\.n\) to at most about \d/);
    const p = await evosearch(['plan', '--population-schedule', '10000000,1000000,1000000,1000000,1000000']);
    assert.equal(p.code, 4, p.stderr);
    assert.match(p.stderr, /--population-schedule 10000000,1000000,1000000,1000000,1000000 makes EvoSearch's plan/);
    assert.match(p.stderr, /lower --population-schedule \(config field evosearch\.populationSchedule\)/);
    assert.match(p.stderr, /--no-archive/);
  });

  it("a plan past the V8 heap limit is refused before any model opens (it aborted with a heap out-of-memory), and the budget it suggests runs", async () => {
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=256`.trim() };
    const dir = await mkdtemp(join(tmpdir(), 'limits-heap-'));
    const r = start(['run', '--budget-nfe', '3000000', '--no-progress', '--out', join(dir, 'big')], env);
    const exit = await r.exitWithin(20_000);
    assert.ok(exit !== null, 'still running after 20 s');
    assert.equal(exit.code, 4, r.stderr());
    assert.ok(exit.ms < 10_000, `refused after ${exit.ms} ms`);
    assert.match(r.stderr(), /^evosearch: memory limit: --budget-nfe 3000000 makes EvoSearch's plan .* of JavaScript heap, past 85 % of this process's heap limit of \d+ MiB \(v8 heap_size_limit\)/m);
    assert.match(r.stderr(), /NODE_OPTIONS=--max-old-space-size=<MiB> \(about \d/);
    noStack(r.stderr());
    assert.equal(existsSync(join(dir, 'big')), false);
    // The largest budget the message names runs to its end in the same heap.
    const suggested = Number(/to at most about ([\d,]+)/.exec(r.stderr())![1]!.replace(/,/g, ''));
    assert.ok(suggested > 100_000 && suggested < 3_000_000, `suggested ${suggested}`);
    const ok = await evosearch(['run', '--budget-nfe', String(suggested), '--no-progress', '--out', join(dir, 'fits')], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`spent ${suggested} NFEs`));
  });

  it('planning particles with rollout fitness at 1e9 NFEs answers at once (it counted down for minutes)', async () => {
    const r = start(['plan', '--method', 'particles', '--particle-fitness', 'rollout', '--budget-nfe', '1000000000']);
    const exit = await r.exitWithin(15_000);
    assert.ok(exit !== null, 'still planning after 15 s');
    assert.equal(exit.code, 4, r.stderr());
    assert.match(r.stderr(), /limit: --budget-nfe 1000000000 makes particle sampling's plan \(k = 11,111,111 particles\)/);
  });

  it('--workers past the thread limit of this machine is refused (it started every thread)', async (t) => {
    const limit = threadLimit();
    if (limit + 1 > 256) return t.skip(`this machine's thread limit ${limit} is above the schema's 256 workers`);
    const r = await evosearch(['run', '--workers', String(limit + 1), '--budget-nfe', '1000', '--no-progress']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`^evosearch: threads limit: --workers ${limit + 1} \\(config field workers\\) asks for ${limit + 1} worker threads, past this machine's limit of ${limit} `, 'm'));
    assert.match(r.stderr, /--workers-at or --cluster/);
  });
});

describe('resume checks its flags as run does', () => {
  it('resume --workers 0 is the config error run gives (it was a TypeError), and the run still resumes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'limits-resume-'));
    const folder = join(dir, 'run');
    // An unfinished run: killed once its first checkpoint is written.
    const r = start(['run', '--budget-nfe', '1000000', '--no-progress', '--out', folder]);
    await waitFor(() => existsSync(join(folder, 'checkpoint.json')), 60_000, 'the first checkpoint', 100);
    r.child.kill('SIGKILL');
    await r.exited;
    assert.equal(existsSync(join(folder, 'record.json')), false, 'the run finished before it was killed');
    const before = (await readdir(folder)).sort();

    const zero = await evosearch(['resume', folder, '--workers', '0']);
    const runZero = await evosearch(['run', '--workers', '0', '--budget-nfe', '1000']);
    assert.equal(zero.code, 2, zero.stderr);
    assert.equal(zero.stderr, runZero.stderr, 'the same message as run --workers 0');
    assert.match(zero.stderr, /^evosearch: invalid command-line flags: workers: /m);
    noStack(zero.stderr);
    const word = await evosearch(['resume', folder, '--workers', 'two']);
    assert.equal(word.code, 2, word.stderr);
    assert.match(word.stderr, /--workers takes an integer, got 'two'/);
    const address = await evosearch(['resume', folder, '--workers-at', 'nowhere']);
    assert.equal(address.code, 2, address.stderr);
    assert.match(address.stderr, /workersAt\.0: must be host:port/);
    assert.deepEqual((await readdir(folder)).sort(), before, 'refusals changed nothing in the folder');

    const resumed = await evosearch(['resume', folder, '--workers', '2', '--no-progress']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /spent 1000000 NFEs in all/);
  });
});

describe('evosearch worker: threads, addresses and signals', () => {
  it('--threads 10000 is refused before it listens (it started thousands of threads); --max-threads raises the limit', async () => {
    const r = start(['worker', '--model', 'analytic:gmm', '--listen', '127.0.0.1:0', '--threads', '10000']);
    const exit = await r.exitWithin(10_000);
    assert.ok(exit !== null, `still running after 10 s: ${r.stdout()}`);
    assert.equal(exit.code, 4, r.stderr());
    assert.equal(r.stdout(), '', 'it never listened');
    assert.match(r.stderr(), /^evosearch: threads limit: --threads 10000 asks for 10000 onnxruntime threads per model session, past this machine's limit of \d+ /m);
    assert.match(r.stderr(), /--max-threads raises the limit, to at most 1024/);

    const over = threadLimit() + 1;
    const refused = await evosearch(['worker', '--model', 'analytic:gmm', '--listen', '127.0.0.1:0', '--threads', String(over)]);
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, new RegExp(`raise the limit with --max-threads ${over}`));
    const raised = await startWorker(['--model', 'analytic:gmm', '--threads', String(over), '--max-threads', String(over)]);
    raised.child.kill('SIGTERM');
    const drained = await raised.exitWithin(10_000);
    assert.equal(drained?.code, 0, raised.stderr());
  });

  it('--listen with a port past 65535 or not a number, or one in use, says so (it showed ERR_SOCKET_BAD_PORT or gRPC text)', async () => {
    const big = await evosearch(['worker', '--model', 'analytic:gmm', '--listen', '127.0.0.1:99999']);
    assert.equal(big.code, 2, big.stderr);
    assert.equal(big.stderr, "evosearch: invalid command-line flags: --listen: '127.0.0.1:99999': port 99999 is out of range; a port is 0 to 65535 (0: any free port)\n");
    const word = await evosearch(['worker', '--model', 'analytic:gmm', '--listen', 'localhost:http']);
    assert.equal(word.code, 2, word.stderr);
    assert.match(word.stderr, /--listen: 'localhost:http': the port 'http' is not a number from 0 to 65535/);
    const bare = await evosearch(['worker', '--model', 'analytic:gmm', '--listen', '127.0.0.1']);
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /--listen: '127\.0\.0\.1' is not host:port \(e\.g\. 0\.0\.0\.0:50051/);

    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const port = (holder.address() as AddressInfo).port;
      const taken = await evosearch(['worker', '--model', 'analytic:gmm', '--listen', `127.0.0.1:${port}`]);
      assert.equal(taken.code, 3, taken.stderr);
      assert.equal(taken.stderr, `evosearch: cannot listen on --listen 127.0.0.1:${port}: port ${port} is in use on 127.0.0.1 (another process listens there); choose another port, or port 0 for any free one\n`);
    } finally {
      holder.close();
    }
    for (const r of [big, word, bare]) assert.doesNotMatch(r.stderr, /ERR_SOCKET_BAD_PORT|options\.port|No address added|Name resolution failed/);
  });

  it('SIGTERM ends a worker busy with a long batch within seconds (it waited for the batch)', async () => {
    const worker = await startWorker(['--model', tinySd]);
    const dir = await mkdtemp(join(tmpdir(), 'limits-worker-'));
    // One batch of thousands of tiny-sd samples: a minute or more of work on a few cores.
    const run = start(['run', '--model', tinySd, '--prompt', 'a red circle', '--method', 'best-of-n', '--budget-nfe', '100000', '--workers-at', worker.address, '--no-progress', '--out', join(dir, 'run')]);
    try {
      await waitFor(() => /"msg":"run set up"/.test(worker.stderr()), 30_000, 'the run set up on the worker', 100);
      // The round is one batch (init and advance together): once Health counts one in flight, it runs.
      await waitFor(async () => (await fetchWorkerHealth(worker.address)).inFlight > 0, 30_000, 'the worker to be running the batch', 100);
      const sent = Date.now();
      worker.child.kill('SIGTERM');
      const exit = await worker.exitWithin(20_000);
      assert.ok(exit !== null, `the worker was still running 20 s after SIGTERM:\n${worker.stderr().slice(-2000)}`);
      const took = Date.now() - sent;
      assert.ok(took < 9000, `exited ${took} ms after SIGTERM`);
      assert.equal(exit.signal, 'SIGTERM', 'ended by the signal, as its default action ends a process');
      assert.match(worker.stderr(), /"msg":"draining"/);
      assert.match(worker.stderr(), /evosearch: the worker did not stop within 5 s of SIGTERM: exiting now/);
    } finally {
      run.child.kill('SIGKILL');
      worker.child.kill('SIGKILL');
    }
  });
});

describe('evosearch run: signals', () => {
  it('SIGTERM ends a run within seconds while a long round works, and says how to resume (it waited for the round)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'limits-run-signal-'));
    const folder = join(dir, 'run');
    const r = start(['run', '--model', tinySd, '--prompt', 'a red circle', '--method', 'best-of-n', '--budget-nfe', '100000', '--workers', '1', '--no-progress', '--out', folder]);
    try {
      await waitFor(async () => existsSync(join(folder, 'run.log')) && /"msg":"run started"/.test(await readFile(join(folder, 'run.log'), 'utf8')), 60_000, 'the run to start its first round', 100);
      // Nothing outside the process tells that the round's batch has reached its thread (the run has
      // no progress display, and local threads have no Health): a second after "run started", it has.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const sent = Date.now();
      r.child.kill('SIGTERM');
      const exit = await r.exitWithin(20_000);
      assert.ok(exit !== null, `the run was still going 20 s after SIGTERM:\n${r.stderr().slice(-2000)}`);
      const took = Date.now() - sent;
      assert.ok(took < 9000, `exited ${took} ms after SIGTERM`);
      assert.equal(exit.signal, 'SIGTERM');
      assert.match(r.stderr(), new RegExp(`evosearch: the run did not stop within 5 s of SIGTERM: exiting now; .*evosearch resume ${folder.replace(/[/.]/g, '\\$&')}`));
    } finally {
      r.child.kill('SIGKILL');
    }
  });
});
