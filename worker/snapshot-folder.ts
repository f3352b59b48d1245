/**
 * Where a worker keeps its state snapshots: one folder its host chose (local threads: the run folder's
 * `snapshots/`; a gRPC worker: `<state dir>/<run scope>/`, worker/state-folder.ts), and the names in it.
 * Names come from the coordinator, so each is checked here once more (proto/snapshot-name.ts) before it
 * becomes a path: a command can neither write nor delete anything outside this folder.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CandidateId, SnapshotFile } from '../proto/commands.js';
import { MAX_SNAPSHOT_TOKEN, snapshotTokenProblem } from '../proto/snapshot-name.js';
import { ensureFolderSync } from '../files/durable-write.js';
import { readSnapshot, SnapshotError, writeSnapshot } from './snapshot-file.js';
import type { TrajectoryState } from './state-store.js';

export class SnapshotFolder {
  constructor(readonly folder: string) {}

  /** Writes `states` as the snapshot `name`, making the folder (its owner's alone) if it is not there. */
  write(name: string, states: readonly (readonly [CandidateId, TrajectoryState])[]): SnapshotFile {
    const file = this.path(name);
    ensureFolderSync(this.folder, 0o700);
    return { name, ...writeSnapshot(file, states) };
  }

  read(name: string, sha256: string, ids: readonly CandidateId[]): Map<CandidateId, TrajectoryState> {
    return readSnapshot(this.path(name), label(name), sha256, ids);
  }

  /** Deletes the snapshot `name`, if there is one. */
  remove(name: string): void {
    rmSync(this.path(name), { force: true });
  }

  private path(name: string): string {
    const problem = snapshotTokenProblem(name);
    if (problem !== null) throw new SnapshotError(label(name), problem);
    return join(this.folder, name);
  }
}

/** How errors show a snapshot: its name, as the coordinator gave it (never the path it has here). */
const label = (name: unknown) => (typeof name === 'string' && name.length <= MAX_SNAPSHOT_TOKEN ? `'${name}'` : '(a name too long to show)');

/** What an executor does with snapshots. */
export type Snapshots = Pick<SnapshotFolder, 'write' | 'read' | 'remove'>;

/** The snapshots of a host that keeps none: every snapshot command fails, saying so. */
export const NO_SNAPSHOTS: Snapshots = Object.freeze({ write: refuse, read: refuse, remove: refuse });

function refuse(name: string): never {
  throw new SnapshotError(label(name), 'this worker keeps no snapshots (its host gave it no snapshot folder)');
}
