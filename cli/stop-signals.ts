/**
 * SIGTERM and SIGINT end an `evosearch` process within seconds, whatever it is doing. A command that
 * stops cleanly on a signal (a worker drains, a run finishes its round and checkpoint) gets a grace
 * period for it; past that, or on a second signal, the process ends at once, as the signal's default
 * action would have ended it (exit status 128 + the signal's number). A clean close can hang: a worker
 * thread inside a native call (onnxruntime creating its thread pools, a long session.run) holds up
 * `process.exit`, which waits for every worker thread; the signal's default action does not wait.
 */

/** How long a clean stop may take after the first signal (default). */
export const STOP_GRACE_MS = 5000;

export interface StopDeadlineOptions {
  /** What is stopping, as the message names it ("the worker", "the run"). */
  readonly what: string;
  readonly graceMs?: number;
  /**
   * The clean stop, called on the first signal. Without one, the clean stop is whatever other
   * listeners the command registered for the signal; with none of those either, the process ends at
   * once (as it would with no listener at all).
   */
  readonly stop?: (signal: NodeJS.Signals) => void;
  /** Said when the process is ended without its clean stop ("its last checkpoint is complete: ..."). */
  readonly hint?: string;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/**
 * Listens for SIGTERM and SIGINT for the rest of the process (or until the returned function is
 * called): the first starts the clean stop and the grace period, the second, or the end of the grace
 * period, ends the process.
 */
export function installStopDeadline(options: StopDeadlineOptions): () => void {
  const graceMs = options.graceMs ?? STOP_GRACE_MS;
  let first: NodeJS.Signals | null = null;
  let timer: NodeJS.Timeout | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first !== null) {
      endNow(signal, `${signal} again while ${options.what} was stopping after ${first}: exiting now${options.hint !== undefined ? `; ${options.hint}` : ''}`);
      return;
    }
    first = signal;
    if (options.stop !== undefined) options.stop(signal);
    else if (process.listenerCount(signal) <= 1) {
      // Nothing here stops cleanly on this signal: end as its default action would.
      endNow(signal, null);
      return;
    }
    timer = setTimeout(() => {
      endNow(signal, `${options.what} did not stop within ${formatSeconds(graceMs)} of ${signal}: exiting now${options.hint !== undefined ? `; ${options.hint}` : ''}`);
    }, graceMs);
    // The grace period never keeps a process alive that has stopped.
    timer.unref();
  };
  // First in line, so that the command's own listeners (often `process.once`, gone once called) are
  // still counted when this one looks.
  for (const signal of SIGNALS) process.prependListener(signal, onSignal);
  return () => {
    if (timer !== null) clearTimeout(timer);
    for (const signal of SIGNALS) process.off(signal, onSignal);
  };
}

/**
 * Ends the process by `signal`'s default action: every listener for it is removed, so Node gives the
 * signal back to the system, and it is raised again. SIGKILL follows if the process is still there.
 */
function endNow(signal: NodeJS.Signals, message: string | null): void {
  if (message !== null) {
    try {
      process.stderr.write(`evosearch: ${message}\n`);
    } catch {
      // A closed stderr does not keep the process alive.
    }
  }
  process.removeAllListeners(signal);
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), 1000);
  process.kill(process.pid, signal);
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
