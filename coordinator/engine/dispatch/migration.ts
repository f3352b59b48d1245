/**
 * Moving a parent's state to the worker where placement put its child: exported from the parent's
 * worker as it is at the round's start, then imported where the child is made, all within the round.
 */
import { transferredBytes, type CandidateId, type Command, type SearchCommand, type TransferredState } from '../../../proto/commands.js';
import { WorkerLostError, type WorkerPool } from '../../../proto/worker-pool.js';
import type { Placement } from './placement.js';
import type { PlacementStats } from './placement-stats.js';
import { unlessAborted } from './unless-aborted.js';

/** A worker was lost while the round's moved parents were being exported (before anything ran). */
export class LostDuringExport extends Error {
  constructor(readonly worker: number, cause: WorkerLostError) {
    super(cause.message, { cause });
  }
}

/** Phase one: copies of the parents whose children live elsewhere, as they are at the round's start. */
export async function exportMovedParents(pool: WorkerPool, placed: ReadonlyMap<CandidateId, Placement>, signal: AbortSignal | undefined): Promise<Map<CandidateId, TransferredState>> {
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
  const exported = await unlessAborted(Promise.allSettled(sources.map(([worker, ids]) => pool.execute(worker, [{ kind: 'export', ids: [...ids] }], undefined, signal))), signal);
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
 * Phase two: puts moved parents where their children are made, ahead of each worker's share (in
 * `perWorker`), and counts what moved in `stats`. A mutation's parent is imported under its own id and
 * dropped there after the round (`cleanup`: a short-lived replica); a copy is imported as the copy.
 */
export function stageImports(
  commands: readonly SearchCommand[],
  placed: ReadonlyMap<CandidateId, Placement>,
  states: ReadonlyMap<CandidateId, TransferredState>,
  perWorker: Command[][],
  cleanup: Command[][],
  stats: PlacementStats,
): void {
  const moved = (state: TransferredState) => {
    stats.transfers += 1;
    stats.bytesMoved += transferredBytes(state);
  };
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
        moved(state);
        continue;
      }
      const held = replicas.get(p.worker) ?? new Set<CandidateId>();
      if (!held.has(parent)) {
        held.add(parent);
        perWorker[p.worker]!.push({ kind: 'import', states: [{ as: parent, state }] });
        moved(state);
      }
      replicas.set(p.worker, held);
    }
  }
  for (const [worker, ids] of replicas) cleanup[worker]!.push({ kind: 'drop', ids: [...ids] });
}
