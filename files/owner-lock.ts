/**
 * A lock file that names its owner (pid, host, start time), created exclusively (O_EXCL). Shared by
 * everything that must keep two processes out of one folder: a run writing its run folder, an install
 * of the CUDA provider libraries. A lock whose owner is a process of this host that no longer exists
 * is stale and taken over, so a killed process never blocks the next one; a lock of another host is
 * never taken over, because its owner cannot be checked from here.
 */
import { linkSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

/** Whether a process of this host with that pid exists (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The owner a lock file names: JSON, or a bare pid (then of this host); null when unreadable. */
export function readLockOwner(file: string): LockOwner | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
  if (/^\d+$/.test(text)) return { pid: Number(text), host: hostname(), since: '' };
  try {
    const owner = JSON.parse(text) as Partial<LockOwner>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? { pid: owner.pid, host: owner.host, since: String(owner.since ?? '') } : null;
  } catch {
    return null;
  }
}

/** An unreadable lock younger than this may be one being written by a process without atomic links: left alone. */
const UNREADABLE_GRACE_MS = 2000;

/**
 * Takes the lock at `file` for this process and returns its release. A live owner (or one on another
 * host) makes it throw `refuse(owner)`; a stale lock, or one unreadable for longer than a moment, is
 * replaced. File-system errors other than the lock existing are thrown as they are.
 *
 * The lock appears with its owner already in it: written to a private file first, then hard-linked
 * into place (link fails when the name exists). A lock created empty and written after (open 'wx',
 * then write) let a second process read it empty in between, take it for a crashed writer's, and run
 * in the same folder (seen under load: two runs into one folder both went ahead).
 */
export function acquireOwnerLock(file: string, refuse: (owner: LockOwner, sameHost: boolean) => Error): () => void {
  const mine = `${file}.${process.pid}.${randomUUID().slice(0, 8)}`;
  writeFileSync(mine, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() } satisfies LockOwner), { flag: 'wx' });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(mine, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const owner = readLockOwner(file);
        if (owner !== null && owner.host !== hostname()) throw refuse(owner, false);
        if (owner !== null && owner.pid !== process.pid && processAlive(owner.pid)) throw refuse(owner, true);
        if (owner === null && youngerThan(file, UNREADABLE_GRACE_MS)) throw refuse({ pid: 0, host: hostname(), since: 'a moment ago (its lock is being written)' }, true);
        rmSync(file, { force: true });
        continue;
      }
      // Only our own lock: one another process took over after ours was removed stays.
      return () => {
        if (readLockOwner(file)?.pid === process.pid) rmSync(file, { force: true });
      };
    }
    throw Object.assign(new Error(`${file} keeps coming back: another process is taking the lock at the same time`), { code: 'ELOCKRACE' });
  } finally {
    rmSync(mine, { force: true });
  }
}

function youngerThan(file: string, ms: number): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs < ms;
  } catch {
    return false;
  }
}
