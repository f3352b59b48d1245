/**
 * Real processes for the fault benches: nats-server (JetStream, its own store), `evosearch worker`s,
 * an `evosearch coordinator`, and `evosearch` commands run to completion. Every child is tracked by a
 * `ProcessSet`, so a bench can end them all in `finally`, whatever went wrong.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const evosearchBin = join(repoRoot, 'bin', 'evosearch.js');

/** Keeps the last `limit` characters of a stream (a worker's log can grow for the whole bench). */
class Tail {
  private text = '';
  constructor(private readonly limit = 64 * 1024) {}
  add(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > 2 * this.limit) this.text = this.text.slice(-this.limit);
  }
  get value(): string {
    return this.text.length > this.limit ? this.text.slice(-this.limit) : this.text;
  }
}

export interface Tracked {
  readonly child: ChildProcess;
  /** Resolves once the process has exited: its code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: () => boolean;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Sends the signal if the process still runs, and waits for its exit. */
  readonly kill: (signal?: NodeJS.Signals) => Promise<void>;
}

/**
 * Every child a bench started; `killAll` ends those still running (SIGKILL) and waits for them. A set
 * made with `subset()` (one cluster's processes) also reports its children to this one, so ending the
 * whole bench ends them too.
 */
export class ProcessSet {
  private readonly live = new Set<Tracked>();

  constructor(private readonly parent?: ProcessSet) {}

  subset(): ProcessSet {
    return new ProcessSet(this);
  }

  private track(tracked: Tracked): void {
    this.live.add(tracked);
    void tracked.exited.then(() => this.live.delete(tracked));
    this.parent?.track(tracked);
  }

  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): Tracked {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    const out = new Tail();
    const err = new Tail();
    child.stdout?.on('data', (c: Buffer) => out.add(c));
    child.stderr?.on('data', (c: Buffer) => err.add(c));
    let done = false;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('error', (error) => {
        err.add(`spawn failed: ${error.message}\n`);
        done = true;
        resolve({ code: null, signal: null });
      });
      child.once('exit', (code, signal) => {
        done = true;
        resolve({ code, signal });
      });
    });
    const tracked: Tracked = {
      child,
      exited,
      running: () => !done,
      stdout: () => out.value,
      stderr: () => err.value,
      kill: async (signal: NodeJS.Signals = 'SIGKILL') => {
        if (!done) child.kill(signal);
        await exited;
      },
    };
    this.track(tracked);
    return tracked;
  }

  async killAll(): Promise<void> {
    await Promise.all([...this.live].map((t) => t.kill('SIGKILL')));
  }
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly wallMs: number;
  readonly timedOut: boolean;
}

/** The last non-empty lines of a process's output, on one line, for an error cell. */
export function lastLines(text: string, lines = 2): string {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '').slice(-lines).join(' / ').slice(0, 600);
}

export function describeExit(r: CliResult): string {
  const how = r.timedOut ? 'timed out' : r.signal !== null ? `ended by ${r.signal}` : `exit ${r.code}`;
  return `${how}: ${lastLines(r.stderr) || lastLines(r.stdout) || '(no output)'}`;
}

/** `node bin/evosearch.js <args>` started; the caller watches it, kills it, or awaits `finish`. */
export function startCli(set: ProcessSet, args: readonly string[], timeoutMs: number, cwd?: string): { proc: Tracked; finish: Promise<CliResult> } {
  const started = performance.now();
  const proc = set.spawn(process.execPath, [evosearchBin, ...args], cwd === undefined ? {} : { cwd });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.child.kill('SIGKILL');
  }, timeoutMs);
  const finish = proc.exited.then(({ code, signal }) => {
    clearTimeout(timer);
    return { code, signal, stdout: proc.stdout(), stderr: proc.stderr(), wallMs: performance.now() - started, timedOut };
  });
  return { proc, finish };
}

export function runCli(set: ProcessSet, args: readonly string[], timeoutMs: number, cwd?: string): Promise<CliResult> {
  return startCli(set, args, timeoutMs, cwd).finish;
}

/** Resolves with the first stdout line of a process that announces itself as listening (JSON). */
function listeningLine(proc: Tracked, what: string, timeoutMs = 60_000): Promise<{ address: string }> {
  const lines = createInterface({ input: proc.child.stdout! });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not listen within ${timeoutMs / 1000} s: ${lastLines(proc.stderr(), 4)}`)), timeoutMs);
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as { address: string });
      } catch {
        reject(new Error(`${what} printed '${line}' instead of its listening line`));
      }
    });
    void proc.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${signal ?? code}) before listening: ${lastLines(proc.stderr(), 4)}`));
    });
  });
}

export function natsBinary(): string {
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim() !== '') return which.stdout.trim();
  const found = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p));
  if (found === undefined) throw new Error('nats-server not found (PATH, /usr/sbin, /usr/local/bin): apt-get install -y nats-server');
  return found;
}

export interface NatsProcess {
  readonly url: string;
  /** SIGKILL, `downMs` with no server, then the same port and store again; resolves once it is ready. */
  restart(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** nats-server with JetStream on 127.0.0.1, a free port, storing under `store`. */
export async function startNats(set: ProcessSet, store: string): Promise<NatsProcess> {
  const binary = natsBinary();
  let proc: Tracked;
  const launch = (port: string) =>
    new Promise<string>((resolve, reject) => {
      proc = set.spawn(binary, ['-js', '-sd', store, '-a', '127.0.0.1', '-p', port], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      let ready = false;
      const timer = setTimeout(() => reject(new Error(`nats-server did not start within 10 s: ${lastLines(log, 4)}`)), 10_000);
      proc.child.stderr!.on('data', (chunk: Buffer) => {
        if (ready) return;
        log += chunk.toString();
        const match = /Listening for client connections on ([\d.]+):(\d+)/.exec(log);
        if (match && /Server is ready/.test(log)) {
          ready = true;
          clearTimeout(timer);
          resolve(`nats://${match[1]}:${match[2]}`);
        }
      });
      void proc.exited.then(({ code, signal }) => {
        if (ready) return;
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${signal ?? code}): ${lastLines(log, 4)}`));
      });
    });
  const url = await launch('-1');
  return {
    url,
    restart: async (downMs: number) => {
      await proc.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await launch(new URL(url).port);
    },
    stop: () => proc.kill('SIGTERM'),
  };
}

export interface ServerProcess {
  readonly address: string;
  readonly proc: Tracked;
}

/** `evosearch worker --model <model> --nats <url>` on a free loopback port, once it has registered. */
export async function startWorker(set: ProcessSet, model: string, natsUrl: string): Promise<ServerProcess> {
  const proc = set.spawn(process.execPath, [evosearchBin, 'worker', '--model', model, '--listen', '127.0.0.1:0', '--insecure', '--nats', natsUrl, '--log-level', 'warn']);
  const { address } = await listeningLine(proc, `worker (${model})`);
  return { address, proc };
}

/** `evosearch coordinator --nats <url> --runs-dir <dir>` on a free loopback port, once it has registered. */
export async function startCoordinator(set: ProcessSet, natsUrl: string, runsDir: string): Promise<ServerProcess> {
  const proc = set.spawn(process.execPath, [evosearchBin, 'coordinator', '--nats', natsUrl, '--listen', '127.0.0.1:0', '--insecure', '--runs-dir', runsDir, '--log-level', 'warn']);
  const { address } = await listeningLine(proc, 'coordinator');
  return { address, proc };
}
