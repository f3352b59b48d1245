/**
 * How a pool's worker threads start: all at once on the CPU; one after another, process-wide, where
 * they open sessions on a GPU provider; and when one fails, the ones that did start are stopped
 * before the failure is thrown.
 *
 * Why one at a time on a GPU: opened at once from four threads of one process on an H200, the CUDA
 * provider failed one of them with "CUDA failure 900: operation not permitted when stream is
 * capturing" (its cudaDeviceSynchronize while another thread's session was being built); opened one
 * after another they all open (bench/reports/multi-gpu/cuda-one-gpu/README.md). The turn is shared by every
 * pool of the process, since a gRPC worker starts one pool per run.
 */
import { TurnQueue } from '../async/timeouts-and-turns.js';
import { allOrNone } from '../async/all-or-none.js';

const gpuSessionOpening = new TurnQueue();

/** Whether threads with these providers open sessions on a GPU (any provider but the CPU's). */
export function opensGpuSessions(providers: readonly string[] | undefined): boolean {
  return (providers ?? []).some((provider) => provider !== 'cpu');
}

export function startThreads<T extends { stop(): Promise<void> }>(count: number, start: (index: number) => Promise<T>, oneAtATime: boolean): Promise<T[]> {
  const starting = Array.from({ length: count }, (_, i) => (oneAtATime ? gpuSessionOpening.run(() => start(i)) : start(i)));
  return allOrNone(starting, async (started) => {
    await Promise.all(started.map((t) => t.stop()));
  });
}
