import {
  addCounters,
  zeroCounters,
  type CandidateId,
  type Command,
  type CommandResult,
  type FetchedSample,
  type ScoredId,
} from '../../proto/commands.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * Spreads each round of commands over the workers: a command touching states is split by where those
 * states live, new states are placed where their parent lives (so no tensor moves), and new roots
 * (init) go to the least-loaded worker. The per-worker pieces run concurrently and their results are
 * merged back into one result per command, in the command's own order, so the search never sees the
 * placement.
 */
export class Dispatcher {
  /** Which worker holds each state. */
  private readonly placement = new Map<CandidateId, number>();
  private readonly load: number[];

  constructor(private readonly pool: WorkerPool) {
    this.load = new Array<number>(pool.size).fill(0);
  }

  /** States each worker holds now. */
  loads(): readonly number[] {
    return this.load;
  }

  async run(commands: readonly Command[]): Promise<CommandResult[]> {
    const perWorker: Command[][] = Array.from({ length: this.pool.size }, () => []);
    /** For each command, which per-worker command pieces it became. */
    const pieces: { worker: number; index: number }[][] = commands.map((command) =>
      this.split(command).map(([worker, piece]) => ({ worker, index: perWorker[worker]!.push(piece) - 1 })),
    );
    const answers = await Promise.all(perWorker.map((list, worker) => (list.length === 0 ? Promise.resolve([]) : this.pool.execute(worker, list))));
    return commands.map((command, c) => merge(command, pieces[c]!.map(({ worker, index }) => answers[worker]![index]!)));
  }

  private split(command: Command): [number, Command][] {
    switch (command.kind) {
      case 'init': {
        const groups = new Map<number, CandidateId[]>();
        for (const id of command.ids) {
          const worker = this.leastLoaded();
          this.place(id, worker);
          push(groups, worker, id);
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
        return [...groups].map(([w, items]) => [w, { kind: 'rollout', items }]);
      }
      case 'mutate': {
        const groups = new Map<number, (typeof command.items)[number][]>();
        for (const item of command.items) {
          const worker = this.where(item.parent);
          this.place(item.child, worker);
          push(groups, worker, item);
        }
        return [...groups].map(([w, items]) => [w, { kind: 'mutate', step: command.step, items }]);
      }
      case 'copy': {
        const groups = new Map<number, (typeof command.items)[number][]>();
        for (const item of command.items) {
          const worker = this.where(item.from);
          this.place(item.to, worker);
          push(groups, worker, item);
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

  private leastLoaded(): number {
    let best = 0;
    for (let w = 1; w < this.load.length; w++) if (this.load[w]! < this.load[best]!) best = w;
    return best;
  }
}

function push<K, V>(groups: Map<K, V[]>, key: K, value: V): void {
  const list = groups.get(key);
  if (list === undefined) groups.set(key, [value]);
  else list.push(value);
}

/** One result per command: scores and samples back in the command's order, counters summed. */
function merge(command: Command, parts: readonly CommandResult[]): CommandResult {
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
