import { zeroCounters, type SearchCommand, type CommandResult, type ScoredId } from '../proto/commands.js';
import type { SearchMachine } from './machine.js';

/**
 * A worker that holds no tensors, only each state's step, and scores with a caller-supplied function.
 * It checks the commands a search issues (every state exists where a command needs it, steps line up)
 * and counts the NFEs they imply, so the search machines can be tested in milliseconds.
 */
export class MetadataWorker {
  readonly steps = new Map<number, number>();
  readonly counters = zeroCounters();
  readonly log: SearchCommand[] = [];
  /** States whose model output at their current step was already paid for by an x0 score. */
  private readonly cached = new Set<number>();
  /** Peak number of states held at once. */
  peak = 0;

  constructor(
    private readonly totalSteps: number,
    /** Reward of a state with this id, rolled out from this step (noise-free stand-in for a model). */
    private readonly reward: (id: number, from: number, kind: 'rollout' | 'final' | 'x0') => number,
  ) {}

  execute(command: SearchCommand): CommandResult {
    this.log.push(command);
    const scores: ScoredId[] = [];
    const counters = zeroCounters();
    const need = (id: number, step?: number) => {
      const at = this.steps.get(id);
      if (at === undefined) throw new Error(`${command.kind}: no state ${id}`);
      if (step !== undefined && at !== step) throw new Error(`${command.kind}: state ${id} is at ${at}, not ${step}`);
    };
    switch (command.kind) {
      case 'init':
        for (const id of command.ids) this.steps.set(id, 0);
        break;
      case 'advance':
        for (const id of command.ids) {
          need(id, command.from);
          this.steps.set(id, command.to);
          counters.nfe += command.to - command.from - (this.cached.delete(id) ? 1 : 0);
        }
        if (command.score) {
          for (const id of command.ids) {
            if (command.to < this.totalSteps) {
              counters.nfe += 1;
              this.cached.add(id);
            }
            scores.push({ id, reward: this.reward(id, command.to, command.to === this.totalSteps ? 'final' : 'x0') });
            counters.decodes += 1;
            counters.rewardCalls += 1;
          }
        }
        break;
      case 'rollout':
        for (const item of command.items) {
          need(item.source, item.from);
          for (const kept of item.archive) this.steps.set(kept.id, kept.step);
          this.steps.set(item.finalId, this.totalSteps);
          counters.nfe += this.totalSteps - item.from;
          counters.decodes += 1;
          counters.rewardCalls += 1;
          scores.push({ id: item.source, reward: this.reward(item.source, item.from, 'rollout') });
        }
        break;
      case 'mutate':
        for (const item of command.items) {
          need(item.parent, command.step);
          this.steps.set(item.child, command.step);
        }
        break;
      case 'copy':
        for (const item of command.items) {
          need(item.from);
          this.steps.set(item.to, this.steps.get(item.from)!);
          if (this.cached.has(item.from)) this.cached.add(item.to);
        }
        break;
      case 'drop':
        for (const id of command.ids) {
          need(id);
          this.steps.delete(id);
          this.cached.delete(id);
        }
        break;
      case 'fetch':
        for (const id of command.ids) need(id);
        break;
    }
    this.peak = Math.max(this.peak, this.steps.size);
    counters.forwardPasses = counters.nfe;
    this.counters.nfe += counters.nfe;
    this.counters.forwardPasses += counters.forwardPasses;
    this.counters.decodes += counters.decodes;
    this.counters.rewardCalls += counters.rewardCalls;
    return { kind: command.kind, scores, samples: [], counters };
  }

  /** Runs a machine to the end; returns its final round. */
  drive(machine: SearchMachine) {
    for (;;) {
      const round = machine.next();
      if (round.kind === 'done') return round;
      machine.accept(round.commands.map((c) => this.execute(c)));
    }
  }
}

/** A deterministic pseudo-random reward in [0, 1) from integers (a stand-in for a model's score). */
export function hashReward(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    h ^= part & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= part >>> 16;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return (h >>> 0) / 2 ** 32;
}
