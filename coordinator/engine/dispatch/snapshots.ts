/**
 * State snapshots: after a round, each worker writes the states it holds to a snapshot it keeps itself
 * (where is its host's business: local threads, the run folder's `snapshots/`; a gRPC worker, its state
 * folder, under the run's scope) and the checkpoint names them; a resume loads the states back from
 * them instead of rebuilding them from their recipes. The coordinator names snapshots, never paths.
 */
import type { SnapshotFile } from '../../../proto/commands.js';
import { snapshotTokenProblem } from '../../../proto/snapshot-name.js';
import type { RecipeBook } from '../../../search/recipes.js';
import { WorkCancelledError, type WorkerPool } from '../../../proto/worker-pool.js';
import type { PlacementStats } from './placement-stats.js';
import type { StateLocations } from './state-locations.js';
import { unlessAborted } from './unless-aborted.js';

export class StateSnapshots {
  constructor(
    private readonly pool: WorkerPool,
    private readonly locations: StateLocations,
    private readonly recipes: RecipeBook,
    private readonly stats: PlacementStats,
    /** Told when snapshots cannot be written or read (the run goes on; a resume rebuilds instead). */
    private readonly onProblem: ((detail: string) => void) | undefined,
  ) {}

  /**
   * Each worker writes every state it holds to a snapshot named for the round and itself; the
   * coordinator gets back ids and checksums only. Null when a worker could not, or when the snapshots
   * do not hold exactly the live states: then the checkpoint has none and a resume rebuilds. Each
   * worker deletes its snapshot of two rounds before, so the previous checkpoint's stays.
   */
  async write(round: number): Promise<SnapshotFile[] | null> {
    const holding = this.locations.holdingWorkers();
    let files: SnapshotFile[];
    try {
      files = await Promise.all(holding.map(async (w) => (await this.pool.execute(w, [{ kind: 'snapshot', name: snapshotName(round, w), ...(round >= 2 ? { dropName: snapshotName(round - 2, w) } : {}) }]))[0]!.snapshot!));
    } catch (error) {
      this.onProblem?.(`round ${round}: ${(error as Error).message}`);
      return null;
    }
    const snapshotted = files.flatMap((f) => f.ids).sort((a, b) => a - b);
    const liveIds = [...this.recipes.ids()].sort((a, b) => a - b);
    if (snapshotted.length !== liveIds.length || snapshotted.some((id, i) => id !== liveIds[i])) {
      this.onProblem?.(`round ${round}: the workers hold ${snapshotted.length} states, the search ${liveIds.length}`);
      return null;
    }
    return files;
  }

  /**
   * Loads the recorded live states that no worker holds from `files` (each given to a surviving worker
   * in turn). A snapshot that is missing (another machine's), damaged, or not named as this release
   * names them (a checkpoint of an earlier release recorded paths) is reported and skipped: its states
   * stay unheld, for recovery to rebuild.
   */
  async restore(files: readonly SnapshotFile[], signal: AbortSignal | undefined): Promise<void> {
    const live = this.locations.liveWorkers(this.pool.size);
    const wanted = new Set(this.locations.unheld(this.recipes.ids()));
    await unlessAborted(Promise.all(files.map(async (file, i) => {
      const ids = file.ids.filter((id) => wanted.has(id));
      if (ids.length === 0) return;
      const worker = live[i % live.length]!;
      const unnamed = snapshotTokenProblem(file.name);
      if (unnamed !== null) {
        this.onProblem?.(`the checkpoint's snapshot ${i} has no name this release reads (${unnamed}); rebuilding its ${ids.length} states instead`);
        return;
      }
      try {
        await this.pool.execute(worker, [{ kind: 'restore', name: file.name, sha256: file.sha256, ids }], undefined, signal);
      } catch (error) {
        if (error instanceof WorkCancelledError) throw error;
        this.onProblem?.(`${(error as Error).message}; rebuilding its ${ids.length} states instead`);
        return;
      }
      for (const id of ids) this.locations.place(id, worker);
      this.stats.restoredStates += ids.length;
    })), signal);
  }
}

/** The snapshot a worker writes after a round: one per worker and round, so a round's never overwrite another's. */
function snapshotName(round: number, worker: number): string {
  return `round-${round}-worker-${worker}.bin`;
}
