import type { Command, CommandResult } from '../../proto/commands.js';
import type { CommandExecutor } from '../../worker/executor.js';
import { WorkCancelledError, type WorkerPool } from '../../proto/worker-pool.js';

/**
 * Workers as plain objects in the calling thread: no transport at all. Tests and benchmarks use it to
 * exercise the engine without thread start-up; the embedded run uses worker threads instead.
 */
export class InProcessPool implements WorkerPool {
  constructor(private readonly executors: readonly CommandExecutor[]) {}

  get size(): number {
    return this.executors.length;
  }

  describe(index: number): string {
    return `in-process #${index}`;
  }

  async execute(index: number, commands: readonly Command[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]> {
    const executor = this.executors[index]!;
    const results: CommandResult[] = [];
    for (const command of commands) {
      // A command runs to its end on this thread; a cancelled batch stops before the next one.
      if (signal?.aborted) throw new WorkCancelledError(signal);
      results.push(await executor.execute(command));
      // In-process executors report after each command (their model calls share this thread anyway).
      if (onSpent !== undefined) onSpent(results.reduce((sum, r) => sum + r.counters.nfe, 0));
    }
    return results;
  }

  async close(): Promise<void> {}
}
