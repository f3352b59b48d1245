/**
 * How busy each worker of a run is, for the live view: a pool that passes every call through to the
 * run's own and times, per worker, how long this run's batches were in flight on it (overlapping
 * batches on one worker count once). It decides nothing and changes no command: the dispatcher runs
 * on it exactly as on the pool it wraps. Costs two clock reads per batch.
 */
import type { Command, CommandResult } from '../../proto/commands.js';
import type { WorkerPool } from '../../proto/worker-pool.js';

export class WorkerActivityPool implements WorkerPool {
  private readonly busyMs: number[] = [];
  private readonly inFlight: number[] = [];
  private readonly since: number[] = [];

  constructor(private readonly pool: WorkerPool) {}

  get size(): number {
    return this.pool.size;
  }

  get warnings(): readonly string[] | undefined {
    return this.pool.warnings;
  }

  describe(index: number): string {
    return this.pool.describe(index);
  }

  async execute(index: number, commands: readonly Command[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]> {
    if ((this.inFlight[index] ?? 0) === 0) this.since[index] = performance.now();
    this.inFlight[index] = (this.inFlight[index] ?? 0) + 1;
    try {
      return await this.pool.execute(index, commands, onSpent, signal);
    } finally {
      this.inFlight[index]! -= 1;
      if (this.inFlight[index] === 0) this.busyMs[index] = (this.busyMs[index] ?? 0) + (performance.now() - this.since[index]!);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  modelMsOf(index: number): number | null {
    return this.pool.modelMsOf?.(index) ?? null;
  }

  /** Milliseconds this run's batches have been in flight on worker `index` (the one in flight now included). */
  busyMsOf(index: number): number {
    const running = (this.inFlight[index] ?? 0) > 0 ? performance.now() - this.since[index]! : 0;
    return (this.busyMs[index] ?? 0) + running;
  }
}
