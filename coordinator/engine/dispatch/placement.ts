/**
 * Which worker gets each state a round creates. A new state is placed with its parent unless that
 * worker already has more than its share of the round's work, in which case it goes to the least-busy
 * worker and its parent's state is moved there (migration.ts). Placement depends only on the commands
 * and on where states already are, never on results or timing, so it is reproducible.
 */
import type { CandidateId, SearchCommand } from '../../../proto/commands.js';
import type { StateLocations } from './state-locations.js';

/** Where a state created in this round goes, and whether its parent's state must travel there first. */
export interface Placement {
  readonly worker: number;
  /** The parent's worker when the state is made away from it (the parent's state is moved). */
  readonly movedFrom: number | null;
  readonly parent: CandidateId | null;
}

/**
 * Decides where every state the round creates lives, over a pool of `workers`. States the round then
 * advances or rolls out are spread so each worker gets ceil(active / workers) of them; others are
 * spread by states held. `balance` off: children always stay with their parent.
 */
export function placeNewStates(commands: readonly SearchCommand[], locations: StateLocations, workers: number, balance: boolean): Map<CandidateId, Placement> {
  const placed = new Map<CandidateId, Placement>();
  const active = new Set<CandidateId>();
  for (const c of commands) {
    if (c.kind === 'advance') c.ids.forEach((id) => active.add(id));
    if (c.kind === 'rollout') c.items.forEach((item) => active.add(item.source));
  }
  const activeCount = locations.live(new Array<number>(workers).fill(0));
  for (const id of active) {
    const w = locations.holderOf(id);
    if (w !== undefined) activeCount[w]! += 1;
  }
  const projectedLoad = locations.liveLoads();
  let created = 0;
  for (const c of commands) {
    if (c.kind === 'init') created += c.ids.length;
    if (c.kind === 'mutate' || c.kind === 'copy') created += c.items.length;
  }
  const liveWorkers = workers - locations.lostCount;
  const activeTarget = Math.ceil(active.size / liveWorkers);
  const loadTarget = Math.ceil((locations.liveStates() + created) / liveWorkers);
  /** States whose content changes (or first exists) during the round: they cannot be exported at its start. */
  const changing = new Set<CandidateId>();

  const choose = (id: CandidateId, parentWorker: number | null, parent: CandidateId | null): Placement => {
    const isActive = active.has(id);
    const counts = isActive ? activeCount : projectedLoad;
    const target = isActive ? activeTarget : loadTarget;
    let worker = parentWorker ?? argmin(counts);
    const canMove = parent === null || (balance && !changing.has(parent));
    if (parentWorker !== null && counts[parentWorker]! >= target && canMove) worker = argmin(counts);
    if (isActive) activeCount[worker]! += 1;
    projectedLoad[worker]! += 1;
    return { worker, movedFrom: parentWorker !== null && worker !== parentWorker ? parentWorker : null, parent };
  };
  const workerOf = (id: CandidateId) => placed.get(id)?.worker ?? locations.where(id);

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

/** The surviving worker holding the fewest states (the first on a tie): where a lost worker's states go. Null when every worker is lost. */
export function leastLoadedSurvivor(locations: StateLocations): number | null {
  const loads = locations.liveLoads();
  return Math.min(...loads) === Infinity ? null : argmin(loads);
}

function argmin(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! < values[best]!) best = i;
  return best;
}
