import { addCounters, zeroCounters, type ComputeCounters, type FetchedSample } from '../../proto/commands.js';
import type { BestCandidate, SearchMachine, SearchProgress } from '../search/machine.js';
import type { CandidateRecord } from '../search/lineage.js';
import type { Dispatcher, PlacementStats } from './dispatcher.js';

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
  readonly counters: ComputeCounters;
  /** States the dispatcher moved between workers to balance them, and their bytes. */
  readonly placement: PlacementStats;
  readonly candidates: readonly CandidateRecord[];
  readonly rounds: readonly RoundReport[];
}

/**
 * Drives a search machine to the end over a dispatcher: the loop the embedded run and the cluster
 * coordinator share. The machine decides; the dispatcher places; nothing here depends on either.
 */
export async function runSearch(machine: SearchMachine, dispatcher: Dispatcher, onRound?: (report: RoundReport) => void): Promise<SearchOutcome> {
  const counters = zeroCounters();
  const rounds: RoundReport[] = [];
  for (;;) {
    const started = performance.now();
    const round = machine.next();
    let bookkeeping = performance.now() - started;
    if (round.kind === 'done') {
      let bestSample: FetchedSample | null = null;
      if (round.best !== null) {
        const [fetched] = await dispatcher.run([{ kind: 'fetch', ids: [round.best.sampleId] }]);
        addCounters(counters, fetched!.counters);
        bestSample = fetched!.samples[0] ?? null;
      }
      return { best: round.best, bestSample, counters, placement: { ...dispatcher.stats }, candidates: machine.candidates(), rounds };
    }
    const results = await dispatcher.run(round.commands);
    for (const result of results) addCounters(counters, result.counters);
    const acceptStarted = performance.now();
    machine.accept(results);
    bookkeeping += performance.now() - acceptStarted;
    const report: RoundReport = {
      round: rounds.length,
      label: round.label,
      progress: machine.progress(),
      counters: { ...counters },
      roundMs: performance.now() - started,
      bookkeepingMs: bookkeeping,
    };
    rounds.push(report);
    onRound?.(report);
  }
}
