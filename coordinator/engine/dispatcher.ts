import { addCounters, zeroCounters, type CandidateId, type Command, type CommandResult, type SearchCommand, type SnapshotFile, type TransferredState } from '../../proto/commands.js';
import { RecipeBook } from '../../search/recipes.js';
import { WorkerLostError, type WorkerPool } from '../../proto/worker-pool.js';
import { exportMovedParents, LostDuringExport, stageImports } from './dispatch/migration.js';
import { placeNewStates } from './dispatch/placement.js';
import { noPlacementYet, type PlacementStats } from './dispatch/placement-stats.js';
import { Recovery } from './dispatch/recovery.js';
import { mergePieces, splitByWorker } from './dispatch/routing.js';
import { StateSnapshots } from './dispatch/snapshots.js';
import { StateLocations } from './dispatch/state-locations.js';
import { unlessAborted } from './dispatch/unless-aborted.js';

export type { PlacementStats } from './dispatch/placement-stats.js';

export interface DispatcherOptions {
  /**
   * Place new states so that every worker gets an even share of the round's work, moving a parent's
   * state when a child must live elsewhere (default true). Off: children always stay with their parent.
   */
  readonly balance?: boolean;
  /**
   * Called before each round is placed: the place to add workers that joined (the pool may grow; new
   * workers get new states from that round on, as the least-loaded ones).
   */
  readonly beforeRound?: () => Promise<void>;
  /** Told when snapshots cannot be written or read (the run goes on; a resume rebuilds instead). */
  readonly onSnapshotProblem?: (detail: string) => void;
}

/**
 * Spreads each round of commands over the workers, composing the pieces in dispatch/: where new
 * states go (placement.ts) and the parents that move for them (migration.ts), each command cut by
 * where its states live and the answers merged back in the command's order (routing.ts), a lost
 * worker's states rebuilt from their recipes (recovery.ts), and the states written to and loaded from
 * snapshots (snapshots.ts). All of them keep one ledger of where each state is (state-locations.ts).
 * The per-worker pieces of a round run concurrently; the search never sees the placement.
 */
export class Dispatcher {
  readonly stats: PlacementStats = noPlacementYet();
  private readonly locations: StateLocations;
  /** How to remake every live state (recovery from a lost worker, a resume without a snapshot). */
  private readonly recipes = new RecipeBook();
  private readonly recovery: Recovery;
  private readonly snapshots: StateSnapshots;
  private readonly balance: boolean;
  private readonly beforeRound: (() => Promise<void>) | undefined;

  constructor(private readonly pool: WorkerPool, options: DispatcherOptions = {}) {
    this.locations = new StateLocations(pool.size);
    this.recovery = new Recovery(pool, this.locations, this.recipes, this.stats);
    this.snapshots = new StateSnapshots(pool, this.locations, this.recipes, this.stats, options.onSnapshotProblem);
    this.balance = options.balance ?? true;
    this.beforeRound = options.beforeRound;
  }

  /**
   * Runs one round. `onSpent` (progress displays only) is told the NFEs the round has spent so far, as
   * the workers report them while they run and as their shares come back; it cannot change or fail
   * the round. Once `signal` aborts, the round stops at once with a WorkCancelledError, whatever the
   * workers are doing (their calls are cancelled or abandoned): the placement is then half-updated,
   * so this dispatcher and its pool serve no further round; the run's last complete round stands.
   */
  async run(commands: readonly SearchCommand[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]> {
    // Each worker's NFEs in this round: its running count, then its share's counted total.
    const spent: number[] = [];
    const told = (worker: number, nfe: number) => {
      if (onSpent === undefined) return;
      spent[worker] = nfe;
      try {
        onSpent(spent.reduce((sum, n) => sum + (n ?? 0), 0));
      } catch {
        // Progress is for the user's eyes: it never fails a round.
      }
    };
    const tell = (worker: number, results: readonly CommandResult[]) => {
      if (onSpent === undefined) return;
      const counters = zeroCounters();
      for (const result of results) addCounters(counters, result.counters);
      told(worker, counters.nfe);
    };
    await this.beforeRound?.();
    this.locations.growTo(this.pool.size);
    for (;;) {
      const roundStart = this.locations.copy();
      const placed = placeNewStates(commands, this.locations, this.pool.size, this.balance);
      let states: Map<CandidateId, TransferredState>;
      try {
        states = await exportMovedParents(this.pool, placed, signal);
      } catch (error) {
        if (!(error instanceof LostDuringExport)) throw error;
        // Nothing of the round has run yet: rebuild what the worker held, then place the round again.
        await this.recovery.replaceLost(error.worker, error.cause as WorkerLostError, roundStart, [], signal);
        continue;
      }
      const perWorker: Command[][] = Array.from({ length: this.pool.size }, () => []);
      const cleanup: Command[][] = Array.from({ length: this.pool.size }, () => []);
      stageImports(commands, placed, states, perWorker, cleanup, this.stats);
      /** For each command, which per-worker command pieces it became. */
      const pieces = commands.map((command) =>
        splitByWorker(command, placed, this.locations).map(([worker, piece]) => ({ worker, index: perWorker[worker]!.push(piece) - 1 })),
      );
      perWorker.forEach((list, w) => list.push(...cleanup[w]!));
      const settled = await unlessAborted(
        Promise.allSettled(
          perWorker.map((list, worker) =>
            list.length === 0 ? Promise.resolve([]) : this.pool.execute(worker, list, onSpent === undefined ? undefined : (nfe) => told(worker, nfe), signal).then((results) => (tell(worker, results), results)),
          ),
        ),
        signal,
      );
      const answers: CommandResult[][] = [];
      for (const [worker, outcome] of settled.entries()) {
        if (outcome.status === 'fulfilled') answers[worker] = outcome.value;
        else if (outcome.reason instanceof WorkerLostError) tell(worker, (answers[worker] = await this.recovery.replaceLost(worker, outcome.reason, roundStart, perWorker[worker]!, signal)));
        else throw outcome.reason;
      }
      this.recipes.record(commands);
      return commands.map((command, c) => mergePieces(command, pieces[c]!.map(({ worker, index }) => answers[worker]![index]!)));
    }
  }

  /** The states each worker holds now, and whether it was lost (displays: the live view). */
  workers(): { readonly states: number; readonly lost: boolean }[] {
    return this.locations.workers();
  }

  /**
   * A round that already ran (a resumed search's journal): its commands go into the recipes and the
   * set of live states, with no worker work. `materialize` then puts those states on the workers.
   */
  record(commands: readonly SearchCommand[]): void {
    this.recipes.record(commands);
  }

  /**
   * Each worker writes every state it holds to a snapshot named for the round, kept where its host keeps
   * them. Null when the snapshot is not usable: then the checkpoint has none and a resume rebuilds
   * (snapshots.ts).
   */
  snapshot(round: number): Promise<SnapshotFile[] | null> {
    return this.snapshots.write(round);
  }

  /**
   * Puts the recorded live states on the workers: loaded from `snapshot` where it has them (the
   * checkpoint's files, each given to a worker in turn), rebuilt from their recipes otherwise (no
   * snapshot, or a file that is missing or damaged), spread evenly over the workers. `signal` stops
   * it as it stops a round (run).
   */
  async materialize(snapshot?: readonly SnapshotFile[], signal?: AbortSignal): Promise<void> {
    if (snapshot !== undefined) await this.snapshots.restore(snapshot, signal);
    await this.recovery.rebuildUnheld(signal);
  }
}
