/** An `evosearch coordinator` process for tests, and the address it serves on once it says it listens. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot } from './repo-root.js';

export interface CoordinatorProcess {
  readonly child: ChildProcess;
  readonly address: string;
  /** Where its --metrics-listen endpoint listens (host:port), when it was given one. */
  readonly metrics?: string;
}

export async function startCoordinator(natsUrl: string, runsDir: string, extra: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<CoordinatorProcess> {
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'evosearch.js'), 'coordinator', '--nats', natsUrl, '--listen', '127.0.0.1:0', '--runs-dir', runsDir, '--log-level', 'error', ...extra], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the coordinator exited with ${code} before it listened`))));
  const listening = await Promise.race([new Promise<{ address: string; metrics?: string }>((resolve) => createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line) as { address: string; metrics?: string }))), exited]);
  return { child, address: listening.address, ...(listening.metrics !== undefined ? { metrics: listening.metrics } : {}) };
}
