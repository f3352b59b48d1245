/**
 * A gRPC worker's state folder (`evosearch worker --state-dir`): where it keeps the snapshots of the runs
 * it serves, one folder per run scope (`<state dir>/<scope>/`), every path derived here from tokens a
 * coordinator gives (proto/snapshot-name.ts), never taken from the wire. The folder is its owner's alone
 * (0700): a folder that is a symbolic link, not a folder, or another user's is refused at start.
 */
import { chmodSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ensureFolderSync } from '../files/durable-write.js';
import { snapshotTokenProblem } from '../proto/snapshot-name.js';
import { FailureError } from '../errors/evosearch-error.js';

/** The flag that sets it, as errors name it. */
export const STATE_DIR_FLAG = '--state-dir';

/** Where a worker keeps its state unless told: beside the user's other evosearch files. */
export function defaultStateFolder(): string {
  return join(homedir(), '.evosearch', 'worker-state');
}

/** Makes `folder` if it is not there (0700) and checks it is this user's own folder; its absolute path. */
export function openStateFolder(folder: string): string {
  const path = resolve(folder);
  // What the flag names is the user's to fix (config); a folder that cannot be made is the machine's (io).
  const fail = (detail: string, code: 'config' | 'io' = 'config', cause?: unknown): never => {
    throw new FailureError(code, `${STATE_DIR_FLAG} ${path}: ${detail}`, cause === undefined ? undefined : { cause });
  };
  try {
    ensureFolderSync(path, 0o700);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') fail('is not a folder', 'config', error);
    fail(`cannot be made (${code ?? (error as Error).message})`, 'io', error);
  }
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) fail('is a symbolic link; give the folder itself');
  if (!stat.isDirectory()) fail('is not a folder');
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) fail(`belongs to another user (uid ${stat.uid}); a worker keeps its state in a folder of its own`);
  // Snapshots hold a run's latents: nobody else reads them.
  if ((stat.mode & 0o077) !== 0) chmodSync(path, 0o700);
  return path;
}

/** The snapshot folder of one run scope, or null when the scope is not a token (no snapshots then). */
export function scopeFolder(stateFolder: string, scope: string): string | null {
  return snapshotTokenProblem(scope) === null ? join(stateFolder, scope) : null;
}

/** How long a run's snapshots are kept after their last write unless told (`--state-ttl`): a week. */
export const DEFAULT_STATE_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * Deletes the scope folders of `stateFolder` that no live run uses and that nothing was written to for
 * `ttlMs`: a finished run's last snapshots, or an interrupted one's nobody resumed. A resume within the
 * time finds them (a resume from scratch rebuilds the states, for NFEs). Only folders named as scopes
 * are looked at, never followed through a link; the names of those deleted are returned.
 */
export function sweepStaleScopes(stateFolder: string, ttlMs: number, live: ReadonlySet<string>, now = Date.now()): string[] {
  const removed: string[] = [];
  for (const entry of readdirSync(stateFolder, { withFileTypes: true })) {
    if (!entry.isDirectory() || live.has(entry.name) || snapshotTokenProblem(entry.name) !== null) continue;
    const folder = join(stateFolder, entry.name);
    try {
      // A snapshot written (and the one before it deleted) updates the folder's own time.
      if (now - lstatSync(folder).mtimeMs < ttlMs) continue;
      rmSync(folder, { recursive: true, force: true });
      removed.push(entry.name);
    } catch {
      // Gone already, or not ours to delete: the next sweep looks again.
    }
  }
  return removed;
}
