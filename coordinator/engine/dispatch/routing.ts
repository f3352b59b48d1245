/**
 * A round's commands cut into one piece per worker by where their states live, and the pieces'
 * answers put back together: one result per command, in the command's own order, so the search never
 * sees the placement.
 */
import { addCounters, zeroCounters, type CandidateId, type Command, type CommandResult, type FetchedSample, type ScoredId, type SearchCommand } from '../../../proto/commands.js';
import type { Placement } from './placement.js';
import type { StateLocations } from './state-locations.js';

/**
 * The per-worker pieces of `command`. The states it creates are recorded in `locations` where
 * `placed` puts them, and the states it drops leave it, so the next command finds them there.
 */
export function splitByWorker(command: SearchCommand, placed: ReadonlyMap<CandidateId, Placement>, locations: StateLocations): [number, Command][] {
  const at = (id: CandidateId) => placed.get(id)!.worker;
  const byHolder = (ids: readonly CandidateId[]) => {
    const groups = new Map<number, CandidateId[]>();
    for (const id of ids) push(groups, locations.where(id), id);
    return groups;
  };
  switch (command.kind) {
    case 'init': {
      const groups = new Map<number, CandidateId[]>();
      for (const id of command.ids) {
        locations.place(id, at(id));
        push(groups, at(id), id);
      }
      return [...groups].map(([w, ids]) => [w, { kind: 'init', ids }]);
    }
    case 'advance':
      return [...byHolder(command.ids)].map(([w, ids]) => [w, { ...command, ids }]);
    case 'fetch':
      return [...byHolder(command.ids)].map(([w, ids]) => [w, { kind: 'fetch', ids }]);
    case 'drop': {
      const groups = byHolder(command.ids);
      for (const id of command.ids) locations.unplace(id);
      return [...groups].map(([w, ids]) => [w, { kind: 'drop', ids }]);
    }
    case 'rollout': {
      const groups = new Map<number, (typeof command.items)[number][]>();
      for (const item of command.items) {
        const worker = locations.where(item.source);
        for (const kept of item.archive) locations.place(kept.id, worker);
        locations.place(item.finalId, worker);
        push(groups, worker, item);
      }
      return [...groups].map(([w, items]) => [w, { ...command, items }]);
    }
    case 'mutate': {
      const groups = new Map<number, (typeof command.items)[number][]>();
      for (const item of command.items) {
        locations.place(item.child, at(item.child));
        push(groups, at(item.child), item);
      }
      return [...groups].map(([w, items]) => [w, { kind: 'mutate', step: command.step, items }]);
    }
    case 'copy': {
      const groups = new Map<number, (typeof command.items)[number][]>();
      for (const item of command.items) {
        const p = placed.get(item.to)!;
        locations.place(item.to, p.worker);
        // A copy made elsewhere arrived by import; only local copies remain to do.
        if (p.movedFrom === null) push(groups, p.worker, item);
      }
      return [...groups].map(([w, items]) => [w, { kind: 'copy', items }]);
    }
  }
}

/** One result per command: scores and samples back in the command's order, counters summed. */
export function mergePieces(command: SearchCommand, parts: readonly CommandResult[]): CommandResult {
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

function push<K, V>(groups: Map<K, V[]>, key: K, value: V): void {
  const list = groups.get(key);
  if (list === undefined) groups.set(key, [value]);
  else list.push(value);
}
