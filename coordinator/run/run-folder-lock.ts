/**
 * Run folders are owned: a run refuses a folder that already holds a run (finished or resumable) unless
 * told to replace it, and a folder is locked while one process writes it. Without this, `--out` naming a
 * finished run's folder silently replaced everything in it, and two runs started into one folder both
 * ran, each overwriting the other's checkpoint and record.
 *
 * The lock is a file created exclusively (O_EXCL) holding the owner's pid, host and start time. A lock
 * whose owner is a process of this host that no longer exists is stale and taken over; a lock of another
 * host is never taken over (its owner cannot be checked from here), and the error says how to clear it.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { JOURNAL_FILE, MANIFEST_FILE, PREVIOUS_MANIFEST_FILE } from '../checkpoint/checkpoint-store.js';

export const LOCK_FILE = '.evosearch.lock';
const RECORD_FILE = 'record.json';

/** A run folder that cannot be used as asked: names the folder, why, and what to do instead. */
export class RunFolderError extends Error {
  override readonly name = 'RunFolderError';
  constructor(readonly folder: string, detail: string) {
    super(`run folder ${folder}: ${detail}`);
  }
}

/**
 * What a folder holds: a finished run (record.json), a resumable one (a checkpoint manifest), or no
 * run. A journal without a manifest is a run that failed before its first round (no workers, say):
 * nothing in it can be resumed, so a new run may take the folder.
 */
export function runFolderState(folder: string): 'finished' | 'resumable' | 'empty' {
  if (existsSync(join(folder, RECORD_FILE))) return 'finished';
  if ([MANIFEST_FILE, PREVIOUS_MANIFEST_FILE].some((f) => existsSync(join(folder, f)))) return 'resumable';
  return 'empty';
}

interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    const owner = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? { pid: owner.pid, host: owner.host, since: String(owner.since ?? '') } : null;
  } catch {
    return null;
  }
}

/** The lock a process holds on a run folder; release() (or the process's exit) gives it up. */
export class RunFolderLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(readonly folder: string, private readonly file: string) {
    process.once('exit', this.onExit);
  }

  /**
   * Locks `folder` (which must exist) for this process. `purpose` says what the lock is for in the
   * error another process gets ("a run", "a resume").
   */
  static acquire(folder: string): RunFolderLock {
    const file = join(folder, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        try {
          writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() } satisfies LockOwner));
        } finally {
          closeSync(fd);
        }
        return new RunFolderLock(folder, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new RunFolderError(folder, `cannot create its lock file ${LOCK_FILE}: ${(error as Error).message}`);
      }
      const owner = readOwner(file);
      if (owner !== null && owner.host !== hostname()) {
        throw new RunFolderError(folder, `is locked by process ${owner.pid} on host ${owner.host} (since ${owner.since}); if no evosearch runs there any more, delete ${join(folder, LOCK_FILE)}`);
      }
      if (owner !== null && owner.pid !== process.pid && alive(owner.pid)) {
        throw new RunFolderError(folder, `another evosearch process (pid ${owner.pid}, since ${owner.since}) is writing it; wait for it to finish or choose another --out`);
      }
      // A lock left by a process that is gone (or unreadable, from a crash while it was written): stale.
      rmSync(file, { force: true });
    }
    throw new RunFolderError(folder, `its lock file ${LOCK_FILE} keeps coming back: another process is taking the folder at the same time`);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    try {
      // Only our own lock: a lock another process took over after ours was removed stays.
      if (readOwner(this.file)?.pid === process.pid) unlinkSync(this.file);
    } catch {
      // Already gone.
    }
  }
}

/** Files a run writes into its folder: what `--replace` removes before a new run starts there. */
const RUN_FILES = [RECORD_FILE, MANIFEST_FILE, PREVIOUS_MANIFEST_FILE, `${MANIFEST_FILE}.tmp`, JOURNAL_FILE, 'config.json', 'best-sample.json', 'run.log', 'report.html', 'best.png', 'population.png', 'best.gif', 'best.mp4', 'snapshots'];

/**
 * Takes `folder` for a new run: locks it, and refuses it when it holds a run, unless `replace`, in which
 * case that run's files are removed first (other files in the folder are left alone).
 */
export function claimRunFolder(folder: string, options: { readonly replace?: boolean } = {}): RunFolderLock {
  const lock = RunFolderLock.acquire(folder);
  const state = runFolderState(folder);
  if (state !== 'empty' && options.replace !== true) {
    lock.release();
    throw new RunFolderError(
      folder,
      state === 'finished'
        ? 'holds a finished run (record.json); choose another --out, or add --replace to discard that run'
        : `holds an unfinished run (its checkpoint); continue it with \`evosearch resume ${folder}\`, choose another --out, or add --replace to discard it`,
    );
  }
  if (state !== 'empty') for (const name of RUN_FILES) rmSync(join(folder, name), { recursive: true, force: true });
  return lock;
}
