/**
 * What one search run tells its process's metrics as it goes (coordinator/run/run-search-to-folder.ts
 * calls it; coordinator-metrics.ts counts it). Each call is a delta since the last.
 */
import type { WireMeter } from './wire-meter.js';

export interface RunMeter {
  /** The run's traffic with its gRPC workers. */
  readonly workerWire: WireMeter;
  /** NFEs a round's results spent. */
  nfeSpent(nfe: number): void;
  /** One round's checkpoint written (its journal line and manifest, synced), in seconds. */
  checkpointWritten(seconds: number): void;
  workersJoined(count: number): void;
  workersLost(count: number): void;
  /** States rebuilt from their recipes (a lost worker's, a resume's without snapshot), and the NFEs that took. */
  statesRebuilt(states: number, nfe: number): void;
}
