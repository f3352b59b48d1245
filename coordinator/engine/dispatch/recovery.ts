/**
 * Rebuilding states from their recipes: those of a worker lost mid-run, and those of a resumed run
 * that no snapshot gave back. Every random draw is addressed, so a recipe run on any worker gives the
 * same state, and selection never sees that it was rebuilt.
 */
import { addCounters, type CandidateId, type Command, type CommandResult } from '../../../proto/commands.js';
import type { RecipeBook } from '../../../search/recipes.js';
import { WorkCancelledError, type WorkerLostError, type WorkerPool } from '../../../proto/worker-pool.js';
import { leastLoadedSurvivor } from './placement.js';
import type { PlacementStats } from './placement-stats.js';
import type { StateLocations } from './state-locations.js';
import { unlessAborted } from './unless-aborted.js';

export class Recovery {
  constructor(
    private readonly pool: WorkerPool,
    private readonly locations: StateLocations,
    private readonly recipes: RecipeBook,
    private readonly stats: PlacementStats,
  ) {}

  /**
   * A worker is gone. Its round-start states are rebuilt from their recipes on the least-loaded
   * survivor, which then runs the lost worker's share of the round (`piece`) on them, apart from its
   * own states; everything the lost worker held or was to make now lives there. Returns the piece's
   * results.
   */
  async replaceLost(lost: number, cause: WorkerLostError, roundStart: ReadonlyMap<CandidateId, number>, piece: readonly Command[], signal: AbortSignal | undefined): Promise<CommandResult[]> {
    this.locations.markLost(lost);
    this.stats.lostWorkers += 1;
    const target = leastLoadedSurvivor(this.locations);
    if (target === null) throw new Error(`every worker is lost (the last: ${cause.message})`, { cause });
    const rebuild = [...roundStart].filter(([, worker]) => worker === lost).map(([id]) => ({ id, recipe: this.recipes.recipe(id) }));
    let result: CommandResult;
    try {
      [result] = (await unlessAborted(this.pool.execute(target, [{ kind: 'recover', rebuild, piece: [...piece] }], undefined, signal), signal)) as [CommandResult];
    } catch (error) {
      if (error instanceof WorkCancelledError) throw error;
      // A second loss within one recovery is not survived: say both.
      throw new Error(`worker ${target} failed while rebuilding lost worker ${lost}'s states (${cause.message}): ${(error as Error).message}`, { cause: error });
    }
    this.stats.rebuiltStates += rebuild.length;
    addCounters(this.stats.rebuildCounters, result.counters);
    this.locations.moveAll(lost, target);
    return [...(result.results ?? [])];
  }

  /** Rebuilds every recorded live state that no worker holds, spread evenly over the surviving workers. */
  async rebuildUnheld(signal: AbortSignal | undefined): Promise<void> {
    const live = this.locations.liveWorkers(this.pool.size);
    const ids = this.locations.unheld(this.recipes.ids()).sort((a, b) => a - b);
    const shares = new Map<number, CandidateId[]>(live.map((w) => [w, []]));
    ids.forEach((id, i) => shares.get(live[i % live.length]!)!.push(id));
    await unlessAborted(Promise.all([...shares].map(async ([worker, share]) => {
      if (share.length === 0) return;
      const [result] = await this.pool.execute(worker, [{ kind: 'recover', rebuild: share.map((id) => ({ id, recipe: this.recipes.recipe(id) })), piece: [] }], undefined, signal);
      addCounters(this.stats.rebuildCounters, result!.counters);
      this.stats.rebuiltStates += share.length;
      for (const id of share) this.locations.place(id, worker);
    })), signal);
  }
}
