/**
 * What a run's round event carries for the live view (RoundDetail in proto/coordinator.proto): the
 * population the round scored, best first; the best so far with its ancestry; the workers. Built
 * after every round from what the run already holds (the round's results, the machine's lineage, the
 * dispatcher's ledger), bounded whatever the population (64 candidates, 64 ancestors): a sort of the
 * round's scores and a walk up one ancestry, so a run nobody watches pays next to nothing for it
 * (test/view-round-detail.test.ts measures it).
 *
 * A thumbnail is named by the round that scored it and the candidate scored; the journal line of that
 * round holds it (coordinator/checkpoint/journal-thumbnails.ts), so nothing here keeps images.
 */
import type { CandidateId, CommandResult, ScoredId } from '../../proto/commands.js';
import type { LineageNode, RoundDetail, ScoredCandidate, WorkerActivity } from '../../proto/coordinator-messages.js';
import type { CandidateRecord } from '../../search/lineage.js';
import type { RoundReport } from '../engine/run-search.js';

/** Candidates of a round, and ancestors of the best, a round event carries at most. */
export const DETAIL_POPULATION = 64;
export const DETAIL_LINEAGE = 64;

export interface WorkerFigures {
  readonly size: number;
  describe(index: number): string;
  busyMsOf(index: number): number;
  modelMsOf(index: number): number | null;
}

export interface PlacementFigures {
  workers(): readonly { readonly states: number; readonly lost: boolean }[];
  readonly stats: { readonly lostWorkers: number; readonly rebuiltStates: number };
}

export class RoundDetails {
  /** The round each candidate was last scored in (where its latest thumbnail is). */
  private readonly scoredIn = new Map<CandidateId, number>();
  private scores: readonly ScoredId[] = [];
  private roundsMs = 0;
  /** The best's sample id when last seen, and where its thumbnail is. */
  private best: { readonly sampleId: CandidateId; readonly round: number | null; readonly candidate: CandidateId } | null = null;

  /** The answers of round `round` (the engine's journal entry): which candidates it scored. */
  noteResults(round: number, results: readonly CommandResult[]): void {
    const scores: ScoredId[] = [];
    for (const result of results) for (const score of result.scores) scores.push(score);
    for (const score of scores) this.scoredIn.set(score.id, round);
    this.scores = scores;
  }

  /**
   * The round's detail. `report` is the round just finished (after noteResults for it), `candidates`
   * the machine's lineage now.
   */
  detail(report: RoundReport, candidates: readonly CandidateRecord[], workers: WorkerFigures, placement: PlacementFigures): RoundDetail {
    this.roundsMs += report.roundMs;
    const scores = this.scores;
    this.scores = [];
    const { progress } = report;
    if (progress.best !== null && progress.best.sampleId !== this.best?.sampleId) {
      // The best changed in this round: its sample is the one this round scored for its candidate (a
      // resumed run's best from before the resume has none this run can name).
      this.best = { sampleId: progress.best.sampleId, round: this.scoredIn.get(progress.best.candidate) === report.round ? report.round : null, candidate: progress.best.candidate };
    }
    let max = -Infinity;
    let sum = 0;
    for (const s of scores) {
      if (s.reward > max) max = s.reward;
      sum += s.reward;
    }
    const population = topScores(scores, DETAIL_POPULATION).map((s): ScoredCandidate => {
      const c = candidates[s.id];
      return { id: s.id, reward: s.reward, metrics: s.metrics ?? {}, ...(c?.parents[0] !== undefined ? { parent: c.parents[0] } : {}), origin: c?.origin.op ?? 'init', generation: c?.generation ?? 0 };
    });
    const bestRecord = progress.best === null ? undefined : candidates[progress.best.sampleId];
    const placed = placement.workers();
    const activity: WorkerActivity[] = Array.from({ length: workers.size }, (_, i) => {
      const busyMs = workers.busyMsOf(i);
      const modelMs = workers.modelMsOf(i);
      return { worker: workers.describe(i), busyMs, busyShare: this.roundsMs > 0 ? Math.min(1, busyMs / this.roundsMs) : 0, ...(modelMs !== null ? { modelMs } : {}), states: placed[i]?.states ?? 0, lost: placed[i]?.lost ?? false };
    });
    return {
      generation: progress.generation,
      generations: progress.generations,
      scored: scores.length,
      ...(scores.length > 0 ? { populationMax: max, populationMean: sum / scores.length } : {}),
      population,
      ...(progress.best !== null ? { best: { candidate: progress.best.candidate, reward: progress.best.reward, metrics: bestRecord?.metrics ?? {} } } : {}),
      lineage: progress.best === null ? [] : this.lineage(progress.best.sampleId, candidates),
      workers: activity,
      lostWorkers: placement.stats.lostWorkers,
      rebuiltStates: placement.stats.rebuiltStates,
    };
  }

  /** The best's ancestry, x_T first (the last DETAIL_LINEAGE of it), each node with its latest evaluation and thumbnail. */
  private lineage(sampleId: CandidateId, candidates: readonly CandidateRecord[]): LineageNode[] {
    const chain: CandidateRecord[] = [];
    for (let id: CandidateId | undefined = sampleId; id !== undefined && chain.length < DETAIL_LINEAGE; id = candidates[id]?.parents[0]) {
      const node = candidates[id];
      if (node === undefined) break;
      chain.push(node);
    }
    chain.reverse();
    return chain.map((node) => {
      const best = node.id === this.best?.sampleId ? this.best : null;
      const thumbnail = best !== null ? (best.round === null ? null : { round: best.round, candidate: best.candidate }) : this.scoredIn.has(node.id) ? { round: this.scoredIn.get(node.id)!, candidate: node.id } : null;
      return {
        id: node.id,
        origin: node.origin.op,
        generation: node.generation,
        step: node.createdAt,
        ...(node.reward !== undefined ? { reward: node.reward } : {}),
        ...(thumbnail !== null ? { thumbnailRound: thumbnail.round, thumbnailCandidate: thumbnail.candidate } : {}),
      };
    });
  }
}

/** The `k` best scores, best first, ties by id: a partial selection, not a sort of the whole round. */
function topScores(scores: readonly ScoredId[], k: number): ScoredId[] {
  const better = (a: ScoredId, b: ScoredId) => b.reward - a.reward || a.id - b.id;
  if (scores.length <= k) return [...scores].sort(better);
  const top: ScoredId[] = [];
  for (const s of scores) {
    if (top.length < k) {
      top.push(s);
      if (top.length === k) top.sort(better);
    } else if (better(s, top[k - 1]!) < 0) {
      // Insert in place (k is small), dropping the last.
      let i = k - 1;
      while (i > 0 && better(s, top[i - 1]!) < 0) i--;
      top.splice(i, 0, s);
      top.pop();
    }
  }
  return top;
}
