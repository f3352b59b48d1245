/**
 * Waits for things started together (threads, processes) and gives all of them, or none: when one
 * fails to start, the ones that did are stopped before its error goes on, so nothing is left running
 * that no caller holds (a worker thread or process left so keeps its process alive).
 */
export async function allOrNone<T>(starting: readonly Promise<T>[], stop: (started: readonly T[]) => Promise<void>): Promise<T[]> {
  const settled = await Promise.allSettled(starting);
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) {
    await stop(started);
    throw failed.reason;
  }
  return started;
}
