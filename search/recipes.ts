/**
 * How to remake every live state: for each, the single-id commands that produced it, from its
 * ancestor's init on. Every random draw is addressed by (seed, purpose, lineage id, step), so running
 * a recipe on any worker of the same model build gives the same state; that is how a lost worker's
 * states come back without checkpoints. Recipes share their ancestors' prefixes (a linked chain per
 * state), so recording a round costs O(states it touches).
 */
import type { CandidateId, Command, SearchCommand } from '../proto/commands.js';

interface Link {
  readonly previous: Link | null;
  readonly command: Command;
}

export class RecipeBook {
  private readonly tips = new Map<CandidateId, Link>();

  /** Records a round's commands, in order, once the round has run. */
  record(commands: readonly SearchCommand[]): void {
    for (const command of commands) this.recordOne(command);
  }

  private recordOne(command: SearchCommand): void {
    const extend = (id: CandidateId, from: CandidateId | null, step: Command) => this.tips.set(id, { previous: from === null ? null : this.tip(from), command: step });
    switch (command.kind) {
      case 'init':
        for (const id of command.ids) extend(id, null, { kind: 'init', ids: [id] });
        break;
      case 'advance':
        // The score flag stays: a one-step x0 score leaves the model output cached in the state.
        for (const id of command.ids) extend(id, id, { kind: 'advance', ids: [id], from: command.from, to: command.to, purpose: command.purpose, ...(command.score ? { score: true } : {}) });
        break;
      case 'rollout':
        for (const item of command.items) {
          const link: Link = { previous: this.tip(item.source), command: { kind: 'rollout', items: [item] } };
          this.tips.set(item.finalId, link);
          for (const kept of item.archive) this.tips.set(kept.id, link);
        }
        break;
      case 'mutate':
        for (const item of command.items) extend(item.child, item.parent, { kind: 'mutate', step: command.step, items: [item] });
        break;
      case 'copy':
        for (const item of command.items) extend(item.to, item.from, { kind: 'copy', items: [item] });
        break;
      case 'drop':
        for (const id of command.ids) this.tips.delete(id);
        break;
      case 'fetch':
        break;
    }
  }

  private tip(id: CandidateId): Link {
    const link = this.tips.get(id);
    if (link === undefined) throw new Error(`recipes: no recipe for candidate ${id} (never created or already dropped)`);
    return link;
  }

  /** The commands that remake `id` as it is now, oldest first. */
  recipe(id: CandidateId): Command[] {
    const commands: Command[] = [];
    for (let link: Link | null = this.tip(id); link !== null; link = link.previous) commands.push(link.command);
    return commands.reverse();
  }

  get size(): number {
    return this.tips.size;
  }

  /** The live states: every state created and not dropped. */
  ids(): IterableIterator<CandidateId> {
    return this.tips.keys();
  }
}
