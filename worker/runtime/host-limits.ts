/**
 * What this machine gives a process, and the threads a process may start on it: checked before the
 * threads start (a worker's --threads, the embedded run's --workers, onnxruntime's intra-op threads),
 * with a LimitError that names the flag, the count and the limit instead of thousands of threads.
 */
import { cpus, totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { LimitError } from '../../errors/limit-error.js';

/** What this machine and this process give a run. */
export interface HostResources {
  readonly cpus: number;
  /** os.totalmem(). */
  readonly totalMemory: number;
  /** This process's V8 heap limit (v8.getHeapStatistics().heap_size_limit); worker threads get the same. */
  readonly heapLimit: number;
}

export function hostResources(): HostResources {
  return { cpus: Math.max(1, cpus().length), totalMemory: totalmem(), heapLimit: getHeapStatistics().heap_size_limit };
}

// ---------------------------------------------------------------------------------------------------
// Threads

/** Threads of one kind a process may start, per CPU core of the machine. */
export const THREADS_PER_CPU = 4;
/** ... and never fewer than this, whatever the core count (a small machine still runs the defaults). */
export const MIN_THREAD_LIMIT = 8;
/** The most any flag may raise a thread count to. */
export const MAX_THREADS = 1024;

/** The default thread limit on a machine with `cpuCount` cores: 4 per core, at least 8, at most 1024. */
export function threadLimit(cpuCount = hostResources().cpus): number {
  return Math.min(MAX_THREADS, Math.max(MIN_THREAD_LIMIT, THREADS_PER_CPU * cpuCount));
}

export interface ThreadAsk {
  /** What the threads are, as the message says it ("onnxruntime threads per model session"). */
  readonly what: string;
  /** The flag that asked for them, as the message names it. */
  readonly flag: string;
  /** The config field of the same value, when there is one. */
  readonly field?: string;
  /** Said right after "lower <flag>": why, or how else (", or run it on ..."). */
  readonly otherwise?: string;
  /** The flag that raises the limit (up to MAX_THREADS), when the command has one. */
  readonly raiseFlag?: string;
  /** The limit in force (default: threadLimit() of this machine; a raise flag's value). */
  readonly limit?: number;
  readonly cpus?: number;
}

/** Refuses a thread count past the limit: the count asked, the limit, how it was set, what to do. */
export function checkThreadCount(count: number, ask: ThreadAsk): void {
  const cpuCount = ask.cpus ?? hostResources().cpus;
  const limit = ask.limit ?? threadLimit(cpuCount);
  if (count <= limit) return;
  const why = ask.limit === undefined
    ? `this machine's limit of ${limit} (${THREADS_PER_CPU} per CPU core, ${cpuCount} core${cpuCount === 1 ? '' : 's'}; at least ${MIN_THREAD_LIMIT}, at most ${MAX_THREADS})`
    : `the limit of ${limit}${ask.raiseFlag !== undefined ? ` set by ${ask.raiseFlag}` : ''}`;
  const raise = ask.raiseFlag === undefined
    ? ''
    : count <= MAX_THREADS
      ? `, or raise the limit with ${ask.raiseFlag} ${count}`
      : `; ${ask.raiseFlag} raises the limit, to at most ${MAX_THREADS}`;
  const field = ask.field === undefined ? '' : ` (config field ${ask.field})`;
  throw new LimitError('threads', `${ask.flag} ${count}${field} asks for ${count} ${ask.what}, past ${why}; lower ${ask.flag}${ask.otherwise ?? ''}${raise}`);
}
