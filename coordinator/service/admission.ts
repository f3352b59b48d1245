/**
 * The coordinator's admission: which submitted runs start now, which wait, and which are refused.
 * Runs start in the order they came while a slot is free (at most `maxRunning` at once) and their
 * planned heap fits beside the running ones' (config/limits.ts estimates it); the rest wait, up to
 * `maxWaiting`. A client holds at most `maxPerClient` runs, waiting and running together. A refusal
 * happens at submission, before any work, and never touches the runs already in.
 */
export interface AdmissionLimits {
  /** Runs searching at once. */
  readonly maxRunning: number;
  /** Runs waiting for a slot. */
  readonly maxWaiting: number;
  /** Runs one client (one certificate name; plaintext callers count as one) has waiting and running. */
  readonly maxPerClient: number;
  /** Coordinator heap the running runs' plans may take together, bytes. */
  readonly heapBytes: number;
}

export interface Admitted {
  readonly id: string;
  readonly owner: string | null;
  /** The plan's coordinator heap estimate, bytes. */
  readonly heap: number;
}

export class Admission<T extends Admitted> {
  private readonly waiting: { readonly run: T; readonly start: () => Promise<void> }[] = [];
  private readonly running = new Set<T>();

  constructor(readonly limits: AdmissionLimits) {}

  /** Why `run` cannot be taken in (a limit, the flag that raises it), or null. */
  refusal(run: T): string | null {
    const { maxWaiting, maxPerClient, heapBytes } = this.limits;
    if (run.heap > heapBytes) return `its plan needs about ${mib(run.heap)} of the coordinator's heap, more than all runs together may take (${mib(heapBytes)}; --max-heap-share raises it, a smaller --budget-nfe lowers the need)`;
    const held = [...this.running].filter((r) => r.owner === run.owner).length + this.waiting.filter((w) => w.run.owner === run.owner).length;
    if (held >= maxPerClient) return `${run.owner === null ? 'this machine\'s clients' : `client '${run.owner}'`} already has ${held} runs waiting or running, the most one client may (--max-runs-per-client raises it)`;
    if (this.waiting.length >= maxWaiting) return `${this.waiting.length} runs are waiting already, the most this coordinator queues (--max-queued raises it); try again when some have finished`;
    return null;
  }

  /** Takes `run` in (call `refusal` first): `start` is called once it may run, and must settle when it ends. */
  enqueue(run: T, start: () => Promise<void>): void {
    this.waiting.push({ run, start });
    this.next();
  }

  /** A waiting run that is no longer wanted (cancelled, or its coordinator stops): true if it was waiting. */
  withdraw(run: T): boolean {
    const at = this.waiting.findIndex((w) => w.run === run);
    if (at < 0) return false;
    this.waiting.splice(at, 1);
    this.next();
    return true;
  }

  get counts(): { readonly running: number; readonly waiting: number } {
    return { running: this.running.size, waiting: this.waiting.length };
  }

  private next(): void {
    while (this.waiting.length > 0 && this.running.size < this.limits.maxRunning) {
      const first = this.waiting[0]!;
      const heap = [...this.running].reduce((sum, r) => sum + r.heap, 0);
      // In order: a large run at the head waits for room rather than being overtaken for ever.
      if (this.running.size > 0 && heap + first.run.heap > this.limits.heapBytes) return;
      this.waiting.shift();
      this.running.add(first.run);
      void first.start().finally(() => {
        this.running.delete(first.run);
        this.next();
      });
    }
  }
}

function mib(bytes: number): string {
  return `${Math.ceil(bytes / 2 ** 20)} MiB`;
}
