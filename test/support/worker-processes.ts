/**
 * Real `evosearch worker` processes on loopback for the cluster tests: each started with a model,
 * listening on a free port, and stopped (or killed) by the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { allOrNone } from '../../async/all-or-none.js';
import { repoRoot } from './repo-root.js';

export interface WorkerProcess {
  readonly address: string;
  readonly build: string;
  /** Where its --metrics-listen endpoint listens (host:port), when it was given one. */
  readonly metrics?: string;
  readonly child: ChildProcess;
  /** Everything the worker wrote on stderr (its log). */
  readonly log: () => string;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
}

export async function startWorker(model: string, extra: readonly string[] = []): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'evosearch.js'), 'worker', '--model', model, '--listen', '127.0.0.1:0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const listening = await Promise.race([
    new Promise<{ address: string; build: string; metrics?: string }>((resolve) => lines.once('line', (line) => resolve(JSON.parse(line) as { address: string; build: string; metrics?: string }))),
    exited.then((code) => Promise.reject(new Error(`worker exited with ${code} before listening: ${stderr}`))),
  ]);
  return { address: listening.address, build: listening.build, ...(listening.metrics !== undefined ? { metrics: listening.metrics } : {}), child, log: () => stderr, exited };
}

/**
 * Waits for workers started together. If one fails to start, the others are stopped before the error
 * goes on: a test whose `before` failed never reaches the `after` that would stop them, and a worker
 * left running keeps the test file's process (and the whole run) from ever exiting.
 */
export function startAll(starting: readonly Promise<WorkerProcess>[]): Promise<WorkerProcess[]> {
  return allOrNone(starting, stopWorkers);
}

/** Stops workers that are still running (SIGKILL: tests do not wait for drains they did not ask for). */
export async function stopWorkers(workers: readonly WorkerProcess[]): Promise<void> {
  await Promise.all(workers.map(async (w) => {
    if (w.child.exitCode === null && w.child.signalCode === null) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
  }));
}
