import { Worker } from 'node:worker_threads';
import type { Command, CommandResult } from '../proto/commands.js';
import type { FromWorker, SerializedError, ThreadHost, ThreadStart, ToWorker } from './thread-main.js';
import type { WorkerSetup } from '../proto/worker-setup.js';
import { cudaProcessEnvironment } from './runtime/providers.js';
import { WorkCancelledError, WorkerCommandError, WorkerLostError, type WorkerPool } from '../proto/worker-pool.js';
import { checkThreadCount } from './runtime/host-limits.js';
import { FailureError } from '../errors/evosearch-error.js';
import { opensGpuSessions, startThreads } from './thread-starts.js';

interface Pending {
  resolve(results: CommandResult[]): void;
  reject(error: Error): void;
  onSpent?: (nfe: number) => void;
}

/** A worker thread and the commands in flight on it. */
class ThreadWorker {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  /** Messages the thread has not answered yet, abandoned ones too: it is busy while any is left. */
  private readonly unanswered = new Set<number>();
  private readonly whenIdle: (() => void)[] = [];
  private readonly whenClosed: (() => void)[] = [];
  private exited = false;
  private failure: Error | null = null;
  description = 'starting';
  warnings: readonly string[] = [];
  /** The thread's time inside session.run so far, as of its last reply. */
  modelMs = 0;

  constructor(readonly index: number, readonly thread: Worker) {}

  static start(index: number, setup: WorkerSetup, host: ThreadHost): Promise<ThreadWorker> {
    const thread = new Worker(new URL('./thread-main.js', import.meta.url), { workerData: { setup, host } satisfies ThreadStart });
    const worker = new ThreadWorker(index, thread);
    return new Promise((resolve, reject) => {
      thread.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ready':
            worker.description = `#${index} ${message.description}`;
            worker.warnings = message.warnings;
            resolve(worker);
            break;
          case 'fatal':
            reject(asError(`#${index}`, message.error, 'failed to start'));
            break;
          case 'progress':
            worker.progress(message.seq, message.nfe);
            break;
          case 'results':
            worker.modelMs = message.modelMs;
            worker.answered(message.seq);
            worker.settle(message.seq, (p) => p.resolve(message.results));
            break;
          case 'error':
            worker.answered(message.seq);
            worker.settle(message.seq, (p) => p.reject(asError(worker.description, message.error, 'command failed')));
            break;
          case 'closed':
            worker.closed();
            break;
        }
      });
      thread.on('error', (error) => {
        const failure = new WorkerLostError(`#${index}`, `thread crashed: ${error.message}`, { cause: error });
        worker.fail(failure);
        reject(failure);
      });
      thread.on('exit', (code) => {
        const failure = new WorkerLostError(`#${index}`, `thread exited with code ${code}`);
        worker.fail(failure);
        worker.answered(null);
        worker.exited = true;
        worker.closed();
        reject(failure);
      });
    });
  }

  execute(commands: readonly Command[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (signal?.aborted) return Promise.reject(new WorkCancelledError(signal));
    const seq = this.seq++;
    return new Promise<CommandResult[]>((resolve, reject) => {
      // A model call cannot be interrupted: on abort the thread's work is abandoned (its answer, when
      // it comes, finds nothing pending); closing the pool waits for the thread to finish it.
      const abandon = () => this.settle(seq, (p) => p.reject(new WorkCancelledError(signal!)));
      signal?.addEventListener('abort', abandon, { once: true });
      const done = () => signal?.removeEventListener('abort', abandon);
      this.pending.set(seq, {
        resolve: (results) => (done(), resolve(results)),
        reject: (error) => (done(), reject(error)),
        ...(onSpent !== undefined ? { onSpent } : {}),
      });
      this.unanswered.add(seq);
      this.thread.postMessage({ type: 'execute', seq, commands } satisfies ToWorker);
    });
  }

  /** The thread answered message `seq` (null: it exited, and will answer nothing). */
  answered(seq: number | null): void {
    if (seq === null) this.unanswered.clear();
    else this.unanswered.delete(seq);
    if (this.unanswered.size > 0) return;
    for (const resolve of this.whenIdle.splice(0)) resolve();
  }

  /** Resolves once the thread has answered every message sent to it (abandoned ones too). */
  idle(): Promise<void> {
    if (this.unanswered.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenIdle.push(resolve));
  }

  /**
   * Ends the thread: it first releases what it holds beyond itself (the run's channels to its reward
   * workers, worker/thread-main.ts), then it is terminated. Call once the thread is idle.
   */
  async stop(): Promise<void> {
    if (!this.exited) {
      await new Promise<void>((resolve) => {
        this.whenClosed.push(resolve);
        this.thread.postMessage({ type: 'close' } satisfies ToWorker);
      });
    }
    await this.thread.terminate();
  }

  /** The thread answered 'close', or exited. */
  closed(): void {
    for (const resolve of this.whenClosed.splice(0)) resolve();
  }

  progress(seq: number, nfe: number): void {
    try {
      this.pending.get(seq)?.onSpent?.(nfe);
    } catch {
      // A display's bug never fails a command.
    }
  }

  private settle(seq: number, action: (pending: Pending) => void): void {
    const pending = this.pending.get(seq);
    this.pending.delete(seq);
    if (pending !== undefined) action(pending);
  }

  fail(error: Error): void {
    this.failure ??= error;
    for (const pending of this.pending.values()) pending.reject(this.failure);
    this.pending.clear();
  }
}

function asError(worker: string, error: SerializedError, what: string): WorkerCommandError {
  const cause = Object.assign(new Error(error.message), { name: error.name, stack: error.stack });
  return new WorkerCommandError(worker, `${what}: ${error.name}: ${error.message}`, { cause });
}

/** The embedded run's workers: one worker thread each, on this machine. */
export class ThreadPool implements WorkerPool {
  private constructor(private readonly workers: readonly ThreadWorker[]) {}

  /**
   * Starts `count` worker threads. A count that is not a positive whole number, or past this machine's
   * thread limit (config/limits.ts), is refused before any thread starts. `host` is what the caller
   * decides for them: the embedded run gives its run folder's `snapshots/`, a gRPC worker its state
   * folder and model roots (worker/grpc-server.ts).
   */
  static async start(count: number, setup: WorkerSetup, host: ThreadHost = {}): Promise<ThreadPool> {
    if (!(Number.isSafeInteger(count) && count > 0)) throw new FailureError('config', `worker threads: ${String(count)} is not a positive whole number of threads`);
    checkThreadCount(count, { what: 'worker threads', flag: '--workers', field: 'workers' });
    // Read by the CUDA libraries when the first session starts them, from the C environment the
    // threads share (a thread's process.env is a copy, so it is set here, on the main thread).
    for (const [key, value] of Object.entries(cudaProcessEnvironment(setup.cuda))) process.env[key] ??= value;
    return new ThreadPool(await startThreads(count, (i) => ThreadWorker.start(i, setup, host), opensGpuSessions(setup.providers)));
  }

  get warnings(): readonly string[] {
    return [...new Set(this.workers.flatMap((w) => w.warnings))];
  }

  get size(): number {
    return this.workers.length;
  }

  describe(index: number): string {
    return this.workers[index]!.description;
  }

  execute(index: number, commands: readonly Command[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]> {
    return this.workers[index]!.execute(commands, onSpent, signal);
  }

  /** Thread `index`'s time inside session.run so far (as of its last reply). */
  modelMsOf(index: number): number | null {
    return this.workers[index]?.modelMs ?? null;
  }

  /** The threads' time inside session.run so far, together (as of their last replies). */
  modelMs(): number {
    return this.workers.reduce((sum, w) => sum + w.modelMs, 0);
  }

  /**
   * Stops the threads. One still running work (abandoned by a cancelled run, or left running when
   * another worker's failure ended the run) is let finish it first: terminating a thread inside an
   * onnxruntime call aborts the whole process (seen: SIGABRT, "terminate called after throwing an
   * instance of 'Napi::Error'"). Then each thread closes its run's channels to reward workers before it
   * is terminated (ThreadWorker.stop). Callers that cannot wait end the process instead (cli/stop-signals.ts).
   */
  async close(): Promise<void> {
    for (const worker of this.workers) worker.fail(new WorkerCommandError(`#${worker.index}`, 'pool closed'));
    await Promise.all(this.workers.map(async (w) => {
      await w.idle();
      await w.stop();
    }));
  }
}
