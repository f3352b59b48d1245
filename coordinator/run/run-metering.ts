/**
 * A run's counts as its process's metrics take them (metrics/run-meter.ts): after each round, what
 * the round spent, the workers that joined and were lost, and the states rebuilt, each as the change
 * since the last report. The engine keeps running totals (the round's counters, the dispatcher's
 * placement stats, the pool's size); this turns them into deltas, so a counter shared by all runs
 * of a coordinator only ever adds.
 */
import type { RunMeter } from '../../metrics/run-meter.js';
import type { PlacementStats } from '../engine/dispatcher.js';

export interface RunTotals {
  /** NFEs the run's rounds have spent so far (a resumed run's replayed rounds included). */
  readonly nfe: number;
  readonly placement: PlacementStats;
  /** Workers in the pool now (it grows as workers join; lost ones stay in it). */
  readonly workers: number;
}

export class RunMetering {
  private nfe: number;
  private workers: number;
  private lost = 0;
  private rebuilt = 0;
  private rebuiltNfe = 0;

  /** `replayedNfe`: what the rounds a resume replays spent, counted by the attempt that ran them. */
  constructor(private readonly meter: RunMeter, startWorkers: number, replayedNfe: number) {
    this.nfe = replayedNfe;
    this.workers = startWorkers;
  }

  /** Reports what changed since the last call. */
  report(totals: RunTotals): void {
    const { placement } = totals;
    if (totals.nfe > this.nfe) this.meter.nfeSpent(totals.nfe - this.nfe);
    if (totals.workers > this.workers) this.meter.workersJoined(totals.workers - this.workers);
    if (placement.lostWorkers > this.lost) this.meter.workersLost(placement.lostWorkers - this.lost);
    const states = placement.rebuiltStates - this.rebuilt;
    const nfe = placement.rebuildCounters.nfe - this.rebuiltNfe;
    if (states > 0 || nfe > 0) this.meter.statesRebuilt(Math.max(0, states), Math.max(0, nfe));
    this.nfe = Math.max(this.nfe, totals.nfe);
    this.workers = Math.max(this.workers, totals.workers);
    this.lost = Math.max(this.lost, placement.lostWorkers);
    this.rebuilt = Math.max(this.rebuilt, placement.rebuiltStates);
    this.rebuiltNfe = Math.max(this.rebuiltNfe, placement.rebuildCounters.nfe);
  }
}
