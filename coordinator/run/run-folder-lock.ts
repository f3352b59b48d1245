/**
 * Run folders are owned: a run refuses a folder that already holds a run (finished or resumable) unless
 * told to replace it, and a folder is locked while one process writes it. Without this, `--out` naming a
 * finished run's folder silently replaced everything in it, and two runs started into one folder both
 * ran, each overwriting the other's checkpoint and record.
 *
 * The lock is files/owner-lock.ts's: a dead owner's lock is taken over, another host's never.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { acquireOwnerLock } from '../../files/owner-lock.js';
import { describeFsFailure } from '../../files/out-folder.js';
import { JOURNAL_FILE, MANIFEST_FILE, PREVIOUS_MANIFEST_FILE } from '../checkpoint/checkpoint-store.js';
import { EVENTS_FILE } from '../service/run-index.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

export const LOCK_FILE = '.evosearch.lock';
const RECORD_FILE = 'record.json';

/** A run folder that cannot be used as asked: names the folder, why, and what to do instead. */
export class RunFolderError extends EvoSearchError {
  readonly code: ErrorCode = 'run-folder';
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

/** The lock a process holds on a run folder; release() (or the process's exit) gives it up. */
export class RunFolderLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(readonly folder: string, private readonly unlock: () => void) {
    process.once('exit', this.onExit);
  }

  /**
   * Locks `folder` (which must exist) for this process; another process writing it, or a lock of
   * another host, is a RunFolderError.
   */
  static acquire(folder: string): RunFolderLock {
    const file = join(folder, LOCK_FILE);
    try {
      const release = acquireOwnerLock(file, (owner, sameHost) =>
        sameHost
          ? new RunFolderError(folder, `another evosearch process (pid ${owner.pid}, since ${owner.since}) is writing it; wait for it to finish or choose another --out`)
          : new RunFolderError(folder, `is locked by process ${owner.pid} on host ${owner.host} (since ${owner.since}); if no evosearch runs there any more, delete ${file}`),
      );
      return new RunFolderLock(folder, release);
    } catch (error) {
      if (error instanceof RunFolderError) throw error;
      // In words (no permission, read-only, full, …), not the raw EACCES / EROFS text.
      throw new RunFolderError(folder, describeFsFailure(error, `create its lock file ${LOCK_FILE}`, folder).text);
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    this.unlock();
  }
}

/** Files a run writes into its folder: what `--replace` removes before a new run starts there. */
const RUN_FILES = [RECORD_FILE, MANIFEST_FILE, PREVIOUS_MANIFEST_FILE, `${MANIFEST_FILE}.tmp`, JOURNAL_FILE, 'config.json', 'best-sample.json', 'run.log', 'report.html', 'best.png', 'population.png', 'best.gif', 'best.mp4', 'snapshots', EVENTS_FILE];

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
