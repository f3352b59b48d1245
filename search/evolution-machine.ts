import type { CandidateId, CommandResult } from '../proto/commands.js';
import type { CandidateRecord } from './lineage.js';
import type { SearchRound } from './machine.js';
import { EvolutionLedger } from './evolution-ledger.js';

/** What a rollout phase must carry for the driver to hand it back; each machine adds its own fields. */
export interface RolloutPhaseBase {
  readonly kind: 'rollout';
}

/** What an EvoSearch machine does in one round; `R` is the machine's rollout phase. */
export type EvolutionPhase<R extends RolloutPhaseBase> =
  | { readonly kind: 'start' }
  | R
  | { readonly kind: 'final'; readonly ids: readonly CandidateId[] }
  /** Frees the rollout sample a final sample overtook. */
  | { readonly kind: 'cleanup' }
  | { readonly kind: 'done' };

/**
 * The round driving EvoSearch's machines share, fixed schedule or adaptive: one round in flight at a
 * time, the round after a rollout built when its results arrive and issued by the next `next()`, the
 * results dispatched by phase, and the final population's scoring and cleanup. Where generations
 * happen and how each is selected and rolled out stays with the machines (`start`, `acceptRollout`).
 */
export abstract class EvolutionMachine<R extends RolloutPhaseBase> {
  protected readonly ledger = new EvolutionLedger();
  protected phase: EvolutionPhase<R> = { kind: 'start' };
  /** The round built from the latest results, issued by the next `next()`. */
  protected pendingRound: SearchRound | null = null;
  private inFlight = false;
  /** Generations completed so far; the final population's scoring counts as one. */
  protected generationsDone = 0;
  protected lastRewards: number[] = [];
  /** The last population, advanced to x0 and scored. */
  private finalPopulation: readonly CandidateId[] = [];

  /** `machine` is the class name the errors give (EvoSearch, AdaptiveEvoSearch). */
  protected constructor(private readonly machine: string) {}

  /** The first round, issued in phase 'start'. */
  protected abstract start(): SearchRound;

  /** Takes a rollout round's results; sets the next phase and, for it, `pendingRound`. */
  protected abstract acceptRollout(phase: R, results: readonly CommandResult[]): void;

  next(): SearchRound {
    if (this.inFlight) throw new Error(`${this.machine}.next() called again before accept() of the round in flight`);
    const round = this.pendingRound ?? this.firstOrDone();
    this.pendingRound = null;
    this.inFlight = round.kind === 'commands';
    return round;
  }

  accept(results: readonly CommandResult[]): void {
    if (!this.inFlight) throw new Error(`${this.machine}.accept() called with no round in flight`);
    this.inFlight = false;
    const phase = this.phase;
    if (phase.kind === 'rollout') this.acceptRollout(phase, results);
    else if (phase.kind === 'final') this.acceptFinal(phase.ids, results);
    else if (phase.kind === 'cleanup') this.phase = { kind: 'done' };
    else throw new Error(`${this.machine}.accept() called with no round in flight (phase ${phase.kind})`);
  }

  candidates(): readonly CandidateRecord[] {
    return this.ledger.lineage.all();
  }

  /** With no round pending, only the start issues one and done answers done; other phases always leave one pending. */
  private firstOrDone(): SearchRound {
    switch (this.phase.kind) {
      case 'start':
        return this.start();
      case 'rollout':
      case 'final':
      case 'cleanup':
        throw new Error(`${this.machine} has no round to issue in phase ${this.phase.kind}`);
      case 'done':
        return { kind: 'done', best: this.ledger.best.current, finalSamples: this.finalPopulation };
    }
  }

  private acceptFinal(ids: readonly CandidateId[], results: readonly CommandResult[]): void {
    this.finalPopulation = ids;
    this.lastRewards = this.ledger.acceptFinal(ids, results);
    this.generationsDone += 1;
    const drops = this.ledger.takeDrops();
    if (drops.length > 0) {
      this.phase = { kind: 'cleanup' };
      this.pendingRound = { kind: 'commands', label: 'free overtaken samples', commands: drops };
    } else {
      this.phase = { kind: 'done' };
    }
  }
}
