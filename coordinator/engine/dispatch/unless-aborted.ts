import { WorkCancelledError } from '../../../proto/worker-pool.js';

/**
 * `work`, unless `signal` aborts first: then a WorkCancelledError at once. A pool that honours the
 * signal stops its work itself; one that does not (or a worker that cannot be interrupted) is not
 * waited for. What it settles to later is dropped.
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(new WorkCancelledError(signal));
  }
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new WorkCancelledError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
