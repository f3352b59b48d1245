import { zeroCounters, type ComputeCounters } from '../../../proto/commands.js';

/** Tensor traffic the dispatcher caused by moving states between workers. */
export interface PlacementStats {
  /** States moved (one per child or copy placed away from its parent). */
  transfers: number;
  bytesMoved: number;
  /** Workers lost during the run, the states rebuilt from their recipes, and the compute that took. */
  lostWorkers: number;
  rebuiltStates: number;
  rebuildCounters: ComputeCounters;
  /** States a resumed run loaded from the workers' snapshots instead of rebuilding them. */
  restoredStates: number;
}

/** Nothing moved, lost, rebuilt or restored yet (the key order is record.json's). */
export function noPlacementYet(): PlacementStats {
  return { transfers: 0, bytesMoved: 0, lostWorkers: 0, rebuiltStates: 0, rebuildCounters: zeroCounters(), restoredStates: 0 };
}
