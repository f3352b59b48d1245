import {
  addCounters,
  transferredBytes,
  zeroCounters,
  type CandidateId,
  type Command,
  type CommandResult,
  type ComputeCounters,
  type FetchedSample,
  type ScoredId,
  type SearchCommand,
  type SnapshotFile,
  type TransferredState,
} from '../../proto/commands.js';
import { RecipeBook } from '../../search/recipes.js';
import { WorkCancelledError, WorkerLostError, type WorkerPool } from '../../proto/worker-pool.js';

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

/** Where a state created in this round goes, and whether its parent's state must travel there first. */
interface Placement {
  readonly worker: number;
  /** The parent's worker when the state is made away from it (the parent's state is moved). */
  readonly movedFrom: number | null;
  readonly parent: CandidateId | null;
}

/**
 * Spreads each round of commands over the workers. A command touching states is split by where those
 * states live; a new state is placed with its parent unless that worker already has more than its
 * share of the round's work, in which case the parent's state is moved to the least-busy worker (and
 * the bytes are counted). The per-worker pieces run concurrently and their results are merged back
 * into one result per command, in the command's own order, so the search never sees the placement.
 * Placement depends only on the commands, never on results or timing, so it is reproducible.
 */
export class Dispatcher {
  /** Which worker holds each state. */
  private readonly placement = new Map<CandidateId, number>();
  private readonly load: number[];
  private readonly balance: boolean;
  readonly stats: PlacementStats = { transfers: 0, bytesMoved: 0, lostWorkers: 0, rebuiltStates: 0, rebuildCounters: zeroCounters(), restoredStates: 0 };
  /** How to remake every live state (recovery from a lost worker). */
  private readonly recipes = new RecipeBook();
  /** Workers lost during the run: they get no more work. */
  private readonly dead = new Set<number>();

  private readonly beforeRound: (() => Promise<void>) | undefined;

  constructor(private readonly pool: WorkerPool, private readonly options: DispatcherOptions = {}) {
    this.load = new Array<number>(pool.size).fill(0);
    this.balance = options.balance ?? true;
    this.beforeRound = options.beforeRound;
  }

  /** States each worker holds now. */
  loads(): readonly number[] {
    return this.load;
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
    while (this.load.length < this.pool.size) this.load.push(0);
    for (;;) {
      const roundStart = new Map(this.placement);
      const placed = this.placeNewStates(commands);
      let states: Map<CandidateId, TransferredState>;
      try {
        states = await this.exportMovedParents(placed, signal);
      } catch (error) {
        if (!(error instanceof LostDuringExport)) throw error;
        // Nothing of the round has run yet: rebuild what the worker held, then place the round again.
        await this.recover(error.worker, error.cause as WorkerLostError, roundStart, [], signal);
        continue;
      }
      const perWorker: Command[][] = Array.from({ length: this.pool.size }, () => []);
      const cleanup: Command[][] = Array.from({ length: this.pool.size }, () => []);
      this.stageImports(commands, placed, states, perWorker, cleanup);
      /** For each command, which per-worker command pieces it became. */
      const pieces = commands.map((command) =>
        this.split(command, placed).map(([worker, piece]) => ({ worker, index: perWorker[worker]!.push(piece) - 1 })),
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
        else if (outcome.reason instanceof WorkerLostError) tell(worker, (answers[worker] = await this.recover(worker, outcome.reason, roundStart, perWorker[worker]!, signal)));
        else throw outcome.reason;
      }
      this.recipes.record(commands);
      return commands.map((command, c) => merge(command, pieces[c]!.map(({ worker, index }) => answers[worker]![index]!)));
    }
  }

  /**
   * A worker is gone. Its round-start states are rebuilt from their recipes on the least-loaded
   * survivor, which then runs the lost worker's share of the round (`piece`) on them, apart from its
   * own states; everything the lost worker held or was to make now lives there. Returns the piece's
   * results. Selection never sees any of this: the rebuilt states are the same states.
   */
  private async recover(lost: number, cause: WorkerLostError, roundStart: ReadonlyMap<CandidateId, number>, piece: readonly Command[], signal: AbortSignal | undefined): Promise<CommandResult[]> {
    this.dead.add(lost);
    this.stats.lostWorkers += 1;
    const live = this.live(this.load);
    if (Math.min(...live) === Infinity) throw new Error(`every worker is lost (the last: ${cause.message})`, { cause });
    const target = argmin(live);
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
    for (const [id, worker] of [...this.placement]) if (worker === lost) this.place(id, target);
    return [...(result.results ?? [])];
  }

  /**
   * A round that already ran (a resumed search's journal): its commands go into the recipes and the
   * set of live states, with no worker work. `materialize` then puts those states on the workers.
   */
  record(commands: readonly SearchCommand[]): void {
    this.recipes.record(commands);
  }

  /**
   * Each worker writes every state it holds to a file named for the round in `folder` (on its own
   * machine); the coordinator gets back ids and checksums only. Null when a worker could not, or when
   * the files do not hold exactly the live states: then the checkpoint has no snapshot and a resume
   * rebuilds. Each worker deletes its file of two rounds before, so the previous checkpoint's stays.
   */
  async snapshot(folder: string, round: number): Promise<SnapshotFile[] | null> {
    const holding = [...new Set(this.placement.values())].filter((w) => !this.dead.has(w)).sort((a, b) => a - b);
    const name = (r: number, w: number) => `${folder}/round-${r}-worker-${w}.bin`;
    let files: SnapshotFile[];
    try {
      files = await Promise.all(holding.map(async (w) => (await this.pool.execute(w, [{ kind: 'snapshot', file: name(round, w), ...(round >= 2 ? { drop: name(round - 2, w) } : {}) }]))[0]!.snapshot!));
    } catch (error) {
      this.options.onSnapshotProblem?.(`round ${round}: ${(error as Error).message}`);
      return null;
    }
    const snapshotted = files.flatMap((f) => f.ids).sort((a, b) => a - b);
    const liveIds = [...this.recipes.ids()].sort((a, b) => a - b);
    if (snapshotted.length !== liveIds.length || snapshotted.some((id, i) => id !== liveIds[i])) {
      this.options.onSnapshotProblem?.(`round ${round}: the workers hold ${snapshotted.length} states, the search ${liveIds.length}`);
      return null;
    }
    return files;
  }

  /**
   * Puts the recorded live states on the workers: loaded from `snapshot` where it has them (the
   * checkpoint's files, each given to a worker in turn), rebuilt from their recipes otherwise (no
   * snapshot, or a file that is missing or damaged), spread evenly over the workers. `signal` stops
   * it as it stops a round (run).
   */
  async materialize(snapshot?: readonly SnapshotFile[], signal?: AbortSignal): Promise<void> {
    const live = [...Array(this.pool.size).keys()].filter((w) => !this.dead.has(w));
    if (snapshot !== undefined) {
      const wanted = new Set([...this.recipes.ids()].filter((id) => !this.placement.has(id)));
      await unlessAborted(Promise.all(snapshot.map(async (file, i) => {
        const ids = file.ids.filter((id) => wanted.has(id));
        if (ids.length === 0) return;
        const worker = live[i % live.length]!;
        try {
          await this.pool.execute(worker, [{ kind: 'restore', file: file.file, sha256: file.sha256, ids }], undefined, signal);
        } catch (error) {
          if (error instanceof WorkCancelledError) throw error;
          this.options.onSnapshotProblem?.(`${(error as Error).message}; rebuilding its ${ids.length} states instead`);
          return;
        }
        for (const id of ids) this.place(id, worker);
        this.stats.restoredStates += ids.length;
      })), signal);
    }
    // The live states are those with a recipe; the ones no worker holds yet still need rebuilding.
    const ids = [...this.recipes.ids()].filter((id) => !this.placement.has(id)).sort((a, b) => a - b);
    const shares = new Map<number, CandidateId[]>(live.map((w) => [w, []]));
    ids.forEach((id, i) => shares.get(live[i % live.length]!)!.push(id));
    await unlessAborted(Promise.all([...shares].map(async ([worker, share]) => {
      if (share.length === 0) return;
      const [result] = await this.pool.execute(worker, [{ kind: 'recover', rebuild: share.map((id) => ({ id, recipe: this.recipes.recipe(id) })), piece: [] }], undefined, signal);
      addCounters(this.stats.rebuildCounters, result!.counters);
      this.stats.rebuiltStates += share.length;
      for (const id of share) this.place(id, worker);
    })), signal);
  }

  /** `values` with the lost workers' entries at Infinity, so nothing is placed on them. */
  private live(values: readonly number[]): number[] {
    return values.map((v, i) => (this.dead.has(i) ? Infinity : v));
  }

  /**
   * Decides where every state the round creates lives. States the round then advances or rolls out are
   * spread so each worker gets ceil(active / workers) of them; others are spread by states held.
   */
  private placeNewStates(commands: readonly SearchCommand[]): Map<CandidateId, Placement> {
    const placed = new Map<CandidateId, Placement>();
    const workers = this.pool.size;
    const active = new Set<CandidateId>();
    for (const c of commands) {
      if (c.kind === 'advance') c.ids.forEach((id) => active.add(id));
      if (c.kind === 'rollout') c.items.forEach((item) => active.add(item.source));
    }
    const activeCount = this.live(new Array<number>(workers).fill(0));
    for (const id of active) {
      const w = this.placement.get(id);
      if (w !== undefined) activeCount[w]! += 1;
    }
    const projectedLoad = this.live(this.load);
    let created = 0;
    for (const c of commands) {
      if (c.kind === 'init') created += c.ids.length;
      if (c.kind === 'mutate' || c.kind === 'copy') created += c.items.length;
    }
    const liveWorkers = workers - this.dead.size;
    const activeTarget = Math.ceil(active.size / liveWorkers);
    const loadTarget = Math.ceil((this.load.reduce((a, b, i) => a + (this.dead.has(i) ? 0 : b), 0) + created) / liveWorkers);
    /** States whose content changes (or first exists) during the round: they cannot be exported at its start. */
    const changing = new Set<CandidateId>();

    const choose = (id: CandidateId, parentWorker: number | null, parent: CandidateId | null): Placement => {
      const isActive = active.has(id);
      const counts = isActive ? activeCount : projectedLoad;
      const target = isActive ? activeTarget : loadTarget;
      let worker = parentWorker ?? argmin(counts);
      const canMove = parent === null || (this.balance && !changing.has(parent));
      if (parentWorker !== null && counts[parentWorker]! >= target && canMove) worker = argmin(counts);
      if (isActive) activeCount[worker]! += 1;
      projectedLoad[worker]! += 1;
      return { worker, movedFrom: parentWorker !== null && worker !== parentWorker ? parentWorker : null, parent };
    };
    const workerOf = (id: CandidateId) => placed.get(id)?.worker ?? this.where(id);

    for (const c of commands) {
      switch (c.kind) {
        case 'init':
          for (const id of c.ids) {
            placed.set(id, choose(id, null, null));
            changing.add(id);
          }
          break;
        case 'mutate':
          for (const item of c.items) {
            placed.set(item.child, choose(item.child, workerOf(item.parent), item.parent));
            changing.add(item.child);
          }
          break;
        case 'copy':
          for (const item of c.items) {
            placed.set(item.to, choose(item.to, workerOf(item.from), item.from));
            changing.add(item.to);
          }
          break;
        case 'rollout':
          for (const item of c.items) {
            const worker = workerOf(item.source);
            for (const kept of item.archive) placed.set(kept.id, { worker, movedFrom: null, parent: item.source });
            placed.set(item.finalId, { worker, movedFrom: null, parent: item.source });
            changing.add(item.finalId);
            item.archive.forEach((kept) => changing.add(kept.id));
          }
          break;
        case 'advance':
          c.ids.forEach((id) => changing.add(id));
          break;
        case 'drop':
        case 'fetch':
          break;
      }
    }
    return placed;
  }

  /** Phase one: copies of the parents whose children live elsewhere, as they are at the round's start. */
  private async exportMovedParents(placed: Map<CandidateId, Placement>, signal: AbortSignal | undefined): Promise<Map<CandidateId, TransferredState>> {
    const parentsBySource = new Map<number, Set<CandidateId>>();
    for (const p of placed.values()) {
      if (p.movedFrom === null || p.parent === null) continue;
      const set = parentsBySource.get(p.movedFrom) ?? new Set<CandidateId>();
      set.add(p.parent);
      parentsBySource.set(p.movedFrom, set);
    }
    const states = new Map<CandidateId, TransferredState>();
    if (parentsBySource.size === 0) return states;
    const sources = [...parentsBySource];
    const exported = await unlessAborted(Promise.allSettled(sources.map(([worker, ids]) => this.pool.execute(worker, [{ kind: 'export', ids: [...ids] }], undefined, signal))), signal);
    for (const [i, outcome] of exported.entries()) {
      if (outcome.status === 'rejected') {
        if (outcome.reason instanceof WorkerLostError) throw new LostDuringExport(sources[i]![0], outcome.reason);
        throw outcome.reason;
      }
      for (const state of outcome.value[0]!.states ?? []) states.set(state.id, state);
    }
    return states;
  }

  /**
   * Puts moved parents where their children are made: a mutation's parent is imported under its own
   * id and dropped there after the round (a short-lived replica); a copy is imported as the copy.
   */
  private stageImports(
    commands: readonly SearchCommand[],
    placed: Map<CandidateId, Placement>,
    states: Map<CandidateId, TransferredState>,
    perWorker: Command[][],
    cleanup: Command[][],
  ): void {
    const replicas = new Map<number, Set<CandidateId>>();
    for (const c of commands) {
      if (c.kind !== 'mutate' && c.kind !== 'copy') continue;
      for (const item of c.items) {
        const child = c.kind === 'mutate' ? (item as { child: CandidateId }).child : (item as { to: CandidateId }).to;
        const parent = c.kind === 'mutate' ? (item as { parent: CandidateId }).parent : (item as { from: CandidateId }).from;
        const p = placed.get(child)!;
        if (p.movedFrom === null) continue;
        const state = states.get(parent)!;
        if (c.kind === 'copy') {
          perWorker[p.worker]!.push({ kind: 'import', states: [{ as: child, state }] });
          this.count(state);
          continue;
        }
        const held = replicas.get(p.worker) ?? new Set<CandidateId>();
        if (!held.has(parent)) {
          held.add(parent);
          perWorker[p.worker]!.push({ kind: 'import', states: [{ as: parent, state }] });
          this.count(state);
        }
        replicas.set(p.worker, held);
      }
    }
    for (const [worker, ids] of replicas) cleanup[worker]!.push({ kind: 'drop', ids: [...ids] });
  }

  private count(state: TransferredState): void {
    this.stats.transfers += 1;
    this.stats.bytesMoved += transferredBytes(state);
  }

  private split(command: SearchCommand, placed: Map<CandidateId, Placement>): [number, Command][] {
    const at = (id: CandidateId) => placed.get(id)!.worker;
    switch (command.kind) {
      case 'init': {
        const groups = new Map<number, CandidateId[]>();
        for (const id of command.ids) {
          this.place(id, at(id));
          push(groups, at(id), id);
        }
        return [...groups].map(([w, ids]) => [w, { kind: 'init', ids }]);
      }
      case 'advance':
        return [...this.groupIds(command.ids)].map(([w, ids]) => [w, { ...command, ids }]);
      case 'fetch':
        return [...this.groupIds(command.ids)].map(([w, ids]) => [w, { kind: 'fetch', ids }]);
      case 'drop': {
        const groups = this.groupIds(command.ids);
        for (const id of command.ids) this.unplace(id);
        return [...groups].map(([w, ids]) => [w, { kind: 'drop', ids }]);
      }
      case 'rollout': {
        const groups = new Map<number, (typeof command.items)[number][]>();
        for (const item of command.items) {
          const worker = this.where(item.source);
          for (const kept of item.archive) this.place(kept.id, worker);
          this.place(item.finalId, worker);
          push(groups, worker, item);
        }
        return [...groups].map(([w, items]) => [w, { ...command, items }]);
      }
      case 'mutate': {
        const groups = new Map<number, (typeof command.items)[number][]>();
        for (const item of command.items) {
          this.place(item.child, at(item.child));
          push(groups, at(item.child), item);
        }
        return [...groups].map(([w, items]) => [w, { kind: 'mutate', step: command.step, items }]);
      }
      case 'copy': {
        const groups = new Map<number, (typeof command.items)[number][]>();
        for (const item of command.items) {
          const p = placed.get(item.to)!;
          this.place(item.to, p.worker);
          // A copy made elsewhere arrived by import; only local copies remain to do.
          if (p.movedFrom === null) push(groups, p.worker, item);
        }
        return [...groups].map(([w, items]) => [w, { kind: 'copy', items }]);
      }
    }
  }

  private groupIds(ids: readonly CandidateId[]): Map<number, CandidateId[]> {
    const groups = new Map<number, CandidateId[]>();
    for (const id of ids) push(groups, this.where(id), id);
    return groups;
  }

  private where(id: CandidateId): number {
    const worker = this.placement.get(id);
    if (worker === undefined) throw new Error(`dispatcher: no worker holds candidate ${id} (never created or already dropped)`);
    return worker;
  }

  private place(id: CandidateId, worker: number): void {
    const previous = this.placement.get(id);
    if (previous !== undefined) this.load[previous]! -= 1;
    this.placement.set(id, worker);
    this.load[worker]! += 1;
  }

  private unplace(id: CandidateId): void {
    const worker = this.placement.get(id);
    if (worker === undefined) return;
    this.placement.delete(id);
    this.load[worker]! -= 1;
  }
}

/** A worker was lost while the round's moved parents were being exported (before anything ran). */
class LostDuringExport extends Error {
  constructor(readonly worker: number, cause: WorkerLostError) {
    super(cause.message, { cause });
  }
}

/**
 * `work`, unless `signal` aborts first: then a WorkCancelledError at once. A pool that honours the
 * signal stops its work itself; one that does not (or a worker that cannot be interrupted) is not
 * waited for. What it settles to later is dropped.
 */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(new WorkCancelledError(signal));
  }
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new WorkCancelledError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

function argmin(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! < values[best]!) best = i;
  return best;
}

function push<K, V>(groups: Map<K, V[]>, key: K, value: V): void {
  const list = groups.get(key);
  if (list === undefined) groups.set(key, [value]);
  else list.push(value);
}

/** One result per command: scores and samples back in the command's order, counters summed. */
function merge(command: SearchCommand, parts: readonly CommandResult[]): CommandResult {
  const counters = zeroCounters();
  for (const part of parts) addCounters(counters, part.counters);
  const scoresById = new Map<CandidateId, ScoredId>();
  const samplesById = new Map<CandidateId, FetchedSample>();
  for (const part of parts) {
    for (const s of part.scores) scoresById.set(s.id, s);
    for (const s of part.samples) samplesById.set(s.id, s);
  }
  const order = command.kind === 'rollout' ? command.items.map((i) => i.source) : 'ids' in command ? command.ids : [];
  const scores = scoresById.size === 0 ? [] : order.map((id) => scoresById.get(id)!);
  const samples = samplesById.size === 0 ? [] : order.map((id) => samplesById.get(id)!);
  return { kind: command.kind, scores, samples, counters };
}
