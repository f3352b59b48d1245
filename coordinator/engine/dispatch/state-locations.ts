import type { CandidateId } from '../../../proto/commands.js';

/**
 * Which worker holds each state, how many states each worker holds, and which workers are lost: the
 * one ledger that placement, recovery and snapshots read and keep up to date, so that none of them
 * can disagree with another about where a state is.
 */
export class StateLocations {
  private readonly holder = new Map<CandidateId, number>();
  private readonly load: number[];
  /** Workers lost during the run: they get no more work. */
  private readonly lost = new Set<number>();

  constructor(workers: number) {
    this.load = new Array<number>(workers).fill(0);
  }

  /** Workers that joined the pool hold nothing yet. */
  growTo(workers: number): void {
    while (this.load.length < workers) this.load.push(0);
  }

  /** The worker holding `id`; an error when none does (a command naming a state that is not there). */
  where(id: CandidateId): number {
    const worker = this.holder.get(id);
    if (worker === undefined) throw new Error(`dispatcher: no worker holds candidate ${id} (never created or already dropped)`);
    return worker;
  }

  /** The worker holding `id`, if any. */
  holderOf(id: CandidateId): number | undefined {
    return this.holder.get(id);
  }

  place(id: CandidateId, worker: number): void {
    const previous = this.holder.get(id);
    if (previous !== undefined) this.load[previous]! -= 1;
    this.holder.set(id, worker);
    this.load[worker]! += 1;
  }

  unplace(id: CandidateId): void {
    const worker = this.holder.get(id);
    if (worker === undefined) return;
    this.holder.delete(id);
    this.load[worker]! -= 1;
  }

  /** Those of `ids` that no worker holds (yet). */
  unheld(ids: Iterable<CandidateId>): CandidateId[] {
    return [...ids].filter((id) => !this.holder.has(id));
  }

  /** Where every state is now: what a round that loses a worker goes back to. */
  copy(): Map<CandidateId, number> {
    return new Map(this.holder);
  }

  /** Everything `from` holds now lives on `to`. */
  moveAll(from: number, to: number): void {
    for (const [id, worker] of [...this.holder]) if (worker === from) this.place(id, to);
  }

  markLost(worker: number): void {
    this.lost.add(worker);
  }

  get lostCount(): number {
    return this.lost.size;
  }

  /** `values` with the lost workers' entries at Infinity, so nothing is placed on them. */
  live(values: readonly number[]): number[] {
    return values.map((v, i) => (this.lost.has(i) ? Infinity : v));
  }

  /** States each worker holds, and whether it is lost (displays). */
  workers(): { readonly states: number; readonly lost: boolean }[] {
    return this.load.map((states, i) => ({ states, lost: this.lost.has(i) }));
  }

  /** States each worker holds, the lost ones at Infinity. */
  liveLoads(): number[] {
    return this.live(this.load);
  }

  /** States the surviving workers hold, all together. */
  liveStates(): number {
    return this.load.reduce((a, b, i) => a + (this.lost.has(i) ? 0 : b), 0);
  }

  /** The surviving workers of a pool of `size`, in order. */
  liveWorkers(size: number): number[] {
    return [...Array(size).keys()].filter((w) => !this.lost.has(w));
  }

  /** The surviving workers that hold at least one state, in order. */
  holdingWorkers(): number[] {
    return [...new Set(this.holder.values())].filter((w) => !this.lost.has(w)).sort((a, b) => a - b);
  }
}
