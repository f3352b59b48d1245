import { addCounters, zeroCounters, type CandidateId, type CommandResult, type ComputeCounters, type FetchedSample, type SearchCommand, type SnapshotFile } from '../../proto/commands.js';
import type { BestCandidate, SearchMachine, SearchProgress } from '../../search/machine.js';
import type { CandidateRecord } from '../../search/lineage.js';
import type { Dispatcher, PlacementStats } from './dispatcher.js';
import { nextSearchId, progressWanted, publishProgress } from './search-progress.js';
import { describeReason } from '../../proto/worker-pool.js';

/** What the run reports after every round (progress bars, logs, events). */
export interface RoundReport {
  readonly round: number;
  readonly label: string;
  readonly progress: SearchProgress;
  /** Compute spent so far in the run. */
  readonly counters: Readonly<ComputeCounters>;
  /** Wall time of this round and of the search bookkeeping within it (next + accept), milliseconds. */
  readonly roundMs: number;
  readonly bookkeepingMs: number;
}

export interface SearchOutcome {
  readonly best: BestCandidate | null;
  /** The best sample, decoded. */
  readonly bestSample: FetchedSample | null;
  /** The final samples (best first, as many as asked for), decoded. */
  readonly population: readonly FetchedSample[];
  /** Thumbnails of scored samples by the candidate that reached them (when asked for). */
  readonly thumbnails: ReadonlyMap<CandidateId, readonly FetchedSample[]>;
  readonly counters: ComputeCounters;
  /** States the dispatcher moved between workers to balance them, and their bytes. */
  readonly placement: PlacementStats;
  readonly candidates: readonly CandidateRecord[];
  readonly rounds: readonly RoundReport[];
  /** Where the engine's time went (for benchmarks and logs; never an input to a decision). */
  readonly timing: SearchTiming;
}

/**
 * Milliseconds of the engine's wall time by what it waited for. The parts add up to the time inside
 * runSearch, apart from the loop's own few statements.
 */
export interface SearchTiming {
  /** Resume only: replaying the journal and putting the live states back on the workers. */
  replayMs: number;
  /** Waiting for the workers' answers to the rounds: their model work, transport, the slowest worker. */
  workersMs: number;
  /** The search machine's next() and accept(). */
  bookkeepingMs: number;
  /** Filing the thumbnails the workers sent back. */
  thumbnailsMs: number;
  /** Waiting for the workers to write their state snapshots. */
  snapshotMs: number;
  /** onJournal: writing the checkpoint, as far as the loop waited for it. */
  journalMs: number;
  /** onRound: progress, logs, events. */
  onRoundMs: number;
  /** Fetching the best and final samples at the end. */
  fetchMs: number;
}

/** What the engine collects beyond the search itself: outputs for the user, never inputs to decisions. */
export interface OutputOptions {
  /** Keep a thumbnail of every scored sample, at most this many pixels a side (for the lineage view). */
  readonly thumbnails?: number;
  /** Fetch up to this many of the final samples (best first), for the population grid. */
  readonly population?: number;
  readonly onRound?: (report: RoundReport) => void;
}

/** What the engine hands over after every round so that the run can be resumed later (the checkpoint). */
export interface CheckpointOptions {
  /**
   * Called after every round with what the workers answered (checkpoints keep these), and the
   * snapshots the workers wrote of their states after it and how long that took (with `snapshots`; null
   * without, or if it failed). A promise it returns runs while the workers do the next round: the
   * engine waits for it before the next round's snapshot and journal entry, before it returns, and
   * before it stops with an error or a cancellation, so entries are kept in order and a run ends
   * only with every finished round kept. Its rejection fails the run.
   */
  readonly onJournal?: (entry: JournalEntry, snapshot: TakenSnapshot | null) => unknown;
  /**
   * After every round, the workers snapshot their states (each where its host keeps snapshots: the
   * engine names them, never a path).
   */
  readonly snapshots?: boolean;
}

/** Where a resumed search starts from: what an earlier attempt's checkpoint kept. */
export interface ResumeOptions {
  /**
   * Rounds already run (a resumed search): the machine is fed these answers without any worker work,
   * then the live states are rebuilt on the workers from their recipes and the search goes on.
   */
  readonly replay?: readonly JournalEntry[];
  /** The snapshot taken after the last replayed round: states are loaded from it instead of rebuilt. */
  readonly restore?: readonly SnapshotFile[];
}

export interface CancelOptions {
  /**
   * Stops the search with a RunCancelledError: between rounds, or mid-round at once (the round in
   * flight is dropped, its workers' calls cancelled). Either way the rounds that finished are all
   * kept (onJournal) before it returns, so a resume goes on from the last of them.
   */
  readonly signal?: AbortSignal;
}

/** Everything runSearch takes besides the machine and the dispatcher, by concern. */
export type RunSearchOptions = OutputOptions & CheckpointOptions & ResumeOptions & CancelOptions;

/** The workers' state files after a round, and the milliseconds writing them took (all workers at once). */
export interface TakenSnapshot {
  readonly files: readonly SnapshotFile[];
  readonly ms: number;
}

/** One round as a checkpoint keeps it: the workers' answers and the round's report. */
export interface JournalEntry {
  readonly results: readonly CommandResult[];
  readonly report: RoundReport;
}

/** The run was cancelled (nothing half-done is reported as a result; the finished rounds are kept). */
export class RunCancelledError extends Error {
  override readonly name = 'RunCancelledError';
}

/**
 * Drives a search machine to the end over a dispatcher: the loop under every run (runSearchToFolder,
 * for the CLI and the coordinator service), the tests and the benchmarks. The machine decides; the
 * dispatcher places; nothing here depends on either.
 */
export async function runSearch(machine: SearchMachine, dispatcher: Dispatcher, options: RunSearchOptions = {}): Promise<SearchOutcome> {
  const { thumbnails, population = 0, onRound, signal, onJournal, replay = [], snapshots, restore } = options;
  const counters = zeroCounters();
  const rounds: RoundReport[] = [];
  /** Work the signal stopped midway is the run's cancellation; any other failure is itself. */
  const cancellable = <T>(work: Promise<T>, what: string): Promise<T> =>
    work.catch((error: unknown) => {
      if (!signal?.aborted) throw error;
      throw new RunCancelledError(`cancelled after ${rounds.length} complete rounds (${what} was stopped midway): ${describeReason(signal.reason)}`, { cause: error });
    });
  const kept = new Map<CandidateId, FetchedSample[]>();
  const timing: SearchTiming = { replayMs: 0, workersMs: 0, bookkeepingMs: 0, thumbnailsMs: 0, snapshotMs: 0, journalMs: 0, onRoundMs: 0, fetchMs: 0 };
  const replayStarted = performance.now();
  for (const entry of replay) {
    const round = machine.next();
    if (round.kind === 'done') throw new Error(`replay: the search ended after ${rounds.length} rounds, but the journal holds ${replay.length}`);
    const commands = thumbnails === undefined ? round.commands : round.commands.map((c) => withThumbnails(c, thumbnails));
    if (entry.results.length !== commands.length || entry.results.some((r, i) => r.kind !== commands[i]!.kind)) {
      throw new Error(`replay: round ${rounds.length} of the journal does not answer the commands the search issues now (another version or configuration?)`);
    }
    dispatcher.record(round.commands);
    for (const result of entry.results) addCounters(counters, result.counters);
    if (thumbnails !== undefined) collectThumbnails(commands, entry.results, kept);
    machine.accept(entry.results);
    rounds.push(entry.report);
  }
  if (replay.length > 0) await cancellable(dispatcher.materialize(restore, signal), "putting the resumed run's states back on the workers");
  timing.replayMs = performance.now() - replayStarted;
  // Progress between rounds for displays (search-progress.ts); nothing of it feeds back into the search.
  const search = nextSearchId();
  if (progressWanted()) {
    const { generation, generations } = machine.progress();
    publishProgress({ kind: 'search-start', search, nfe: counters.nfe, generation, generations });
  }
  // The previous round's journal entry, still being kept while this round runs.
  let journaling: Promise<void> = Promise.resolve();
  const journaled = async () => {
    const waited = performance.now();
    const pending = journaling;
    journaling = Promise.resolve();
    await pending;
    timing.journalMs += performance.now() - waited;
  };
  try {
    for (;;) {
      if (signal?.aborted) {
        await journaled();
        throw new RunCancelledError(`cancelled after ${rounds.length} rounds: ${describeReason(signal.reason)}`);
      }
      const started = performance.now();
      const round = machine.next();
      let bookkeeping = performance.now() - started;
      if (round.kind === 'done') {
        timing.bookkeepingMs += bookkeeping;
        const fetchStarted = performance.now();
        const ranked = rankFinals(round.finalSamples, machine.candidates()).slice(0, population);
        const wanted = [...(round.best !== null ? [round.best.sampleId] : []), ...ranked.filter((id) => id !== round.best?.sampleId)];
        let fetchedById = new Map<CandidateId, FetchedSample>();
        if (wanted.length > 0) {
          const [fetched] = await cancellable(dispatcher.run([{ kind: 'fetch', ids: wanted }], undefined, signal), 'fetching the final samples');
          addCounters(counters, fetched!.counters);
          fetchedById = new Map(fetched!.samples.map((s) => [s.id, s]));
        }
        timing.fetchMs = performance.now() - fetchStarted;
        publishProgress({ kind: 'search-end', search, nfe: counters.nfe });
        await journaled();
        return {
          best: round.best,
          bestSample: round.best === null ? null : fetchedById.get(round.best.sampleId) ?? null,
          population: ranked.map((id) => fetchedById.get(id)!),
          thumbnails: kept,
          counters,
          placement: { ...dispatcher.stats },
          candidates: machine.candidates(),
          rounds,
          timing,
        };
      }
      const commands = thumbnails === undefined ? round.commands : round.commands.map((c) => withThumbnails(c, thumbnails));
      let onSpent: ((nfe: number) => void) | undefined;
      if (progressWanted()) {
        const { generation, generations } = machine.progress();
        const before = counters.nfe;
        publishProgress({ kind: 'round-start', search, round: rounds.length, label: round.label, nfe: before, generation, generations });
        onSpent = (nfe) => publishProgress({ kind: 'work', search, round: rounds.length, nfe: before + nfe });
      }
      const dispatched = performance.now();
      const results = await cancellable(dispatcher.run(commands, onSpent, signal), 'the round in flight');
      timing.workersMs += performance.now() - dispatched;
      for (const result of results) addCounters(counters, result.counters);
      const collecting = performance.now();
      if (thumbnails !== undefined) collectThumbnails(commands, results, kept);
      timing.thumbnailsMs += performance.now() - collecting;
      const acceptStarted = performance.now();
      machine.accept(results);
      bookkeeping += performance.now() - acceptStarted;
      timing.bookkeepingMs += bookkeeping;
      const report: RoundReport = {
        round: rounds.length,
        label: round.label,
        progress: machine.progress(),
        counters: { ...counters },
        roundMs: performance.now() - started,
        bookkeepingMs: bookkeeping,
      };
      rounds.push(report);
      // The previous round's entry is kept before this round's snapshot replaces the files of the round
      // before it: at any moment the newest kept entry has its snapshot on disk, as without the overlap.
      await journaled();
      const snapshotStarted = performance.now();
      const files = snapshots !== true ? null : await dispatcher.snapshot(report.round);
      const journalStarted = performance.now();
      timing.snapshotMs += journalStarted - snapshotStarted;
      const entry = onJournal?.({ results, report }, files === null ? null : { files, ms: journalStarted - snapshotStarted });
      if (entry instanceof Promise) {
        // Awaited later (journaled); a rejection before then must not count as unhandled.
        entry.catch(() => undefined);
        journaling = entry.then(() => undefined);
      }
      const onRoundStarted = performance.now();
      timing.journalMs += onRoundStarted - journalStarted;
      if (progressWanted()) publishProgress({ kind: 'round-end', search, round: report.round, nfe: report.counters.nfe, generation: report.progress.generation, generations: report.progress.generations, best: report.progress.best?.reward ?? null });
      onRound?.(report);
      timing.onRoundMs += performance.now() - onRoundStarted;
    }
  } catch (error) {
    // Whatever stopped the run, the rounds that finished before it are kept first.
    await journaling.catch(() => undefined);
    throw error;
  }
}

/** Asks scoring commands to hand back thumbnails of what they score. */
function withThumbnails(command: SearchCommand, side: number): SearchCommand {
  if (command.kind === 'rollout') return { ...command, thumbnails: side };
  if (command.kind === 'advance' && command.score) return { ...command, thumbnails: side };
  return command;
}

/**
 * Files each thumbnail under the candidate that reached that sample: a rollout's own node (its final
 * id, unique per evaluation), or the scored candidate itself.
 */
function collectThumbnails(commands: readonly SearchCommand[], results: readonly CommandResult[], kept: Map<CandidateId, FetchedSample[]>): void {
  commands.forEach((command, i) => {
    const samples = results[i]!.samples;
    if (samples.length === 0) return;
    const owners = command.kind === 'rollout' ? command.items.map((item) => item.finalId) : command.kind === 'advance' ? command.ids : [];
    samples.forEach((sample, k) => {
      const owner = owners[k]!;
      const list = kept.get(owner) ?? [];
      list.push(sample);
      kept.set(owner, list);
    });
  });
}

/** Final samples best first (by their latest evaluation), ties by id. */
function rankFinals(ids: readonly CandidateId[], candidates: readonly CandidateRecord[]): CandidateId[] {
  return [...ids].sort((a, b) => (candidates[b]!.reward ?? -Infinity) - (candidates[a]!.reward ?? -Infinity) || a - b);
}
