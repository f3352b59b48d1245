/**
 * Writes for files that must survive a crash (kill -9, power loss): the checkpoint manifest and its
 * journal, the workers' state snapshots, record.json, the CUDA provider's install manifest, the
 * report's files. Every replacement goes the same way: the new content is written to a temporary file
 * in the target's own folder (one filesystem, so the rename is atomic), synced, renamed over the
 * target, and the folder is synced so the rename itself is durable. A reader, or the next process after
 * a crash, sees the old content or the new one, never a part of either.
 *
 * A temporary file is named `<target>.<host>-<pid>-<random>.tmp`, opened exclusively, so two writers
 * never share one and a leftover can never make a later write fail. Leftovers of processes of this host
 * that no longer run (a writer killed between its write and its rename) are removed by the next write
 * of the same target.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { link, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { processAlive } from './owner-lock.js';

export type DurableData = string | Uint8Array | readonly Uint8Array[];

export interface DurableWriteOptions {
  /** File mode of a newly made file (default 0o666 less the umask, as fs.writeFile). */
  readonly mode?: number;
}

const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
const TEMP = /^(.*)\.([0-9a-f]{8})-(\d+)-[0-9a-f]{8}\.tmp$/;

/** The temporary file a replacement of `target` writes first. */
function temporaryFor(target: string): string {
  return join(dirname(target), `${basename(target)}.${HOST}-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

/** True for a temporary file this module makes for some target (`name` is a file name, not a path). */
export function isDurableTemporary(name: string): boolean {
  return TEMP.test(name);
}

function chunks(data: DurableData): readonly Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data)];
  if (data instanceof Uint8Array) return [data];
  return data as readonly Uint8Array[];
}

function writeAll(fd: number, parts: readonly Uint8Array[]): void {
  for (const part of parts) {
    let done = 0;
    while (done < part.byteLength) done += writeSync(fd, part, done, part.byteLength - done);
  }
}

async function writeAllAsync(handle: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  for (const part of parts) {
    let done = 0;
    while (done < part.byteLength) done += (await handle.write(part, done, part.byteLength - done)).bytesWritten;
  }
}

const FOLDER_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'EBADF', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Syncs a folder, so that the names made, renamed or removed in it survive a power loss. Filesystems
 * (and platforms) that cannot sync a folder are let be: there the renames still happened.
 */
export function syncFolderSync(folder: string): void {
  let fd: number;
  try {
    fd = openSync(folder, 'r');
  } catch (error) {
    if (FOLDER_SYNC_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) return;
    throw error;
  }
  try {
    fsyncSync(fd);
  } catch (error) {
    if (!FOLDER_SYNC_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    closeSync(fd);
  }
}

/** syncFolderSync on libuv's threads. */
export async function syncFolder(folder: string): Promise<void> {
  let handle;
  try {
    handle = await open(folder, 'r');
  } catch (error) {
    if (FOLDER_SYNC_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) return;
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!FOLDER_SYNC_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Makes `folder` (and its parents) and syncs the parent of each folder made, so they survive a crash.
 * `mode` is the new folders' permissions (before the umask; 0o700: its owner's alone).
 */
export function ensureFolderSync(folder: string, mode?: number): void {
  const first = mkdirSync(folder, { recursive: true, ...(mode !== undefined ? { mode } : {}) });
  if (first === undefined) return;
  // mkdirSync returns the first folder it made: it and every one below it are new.
  for (let made = folder; ; made = dirname(made)) {
    syncFolderSync(dirname(made));
    if (made === first || dirname(made) === made) break;
  }
}


/** Leftover temporaries of `target` from processes of this host that no longer run. */
function staleTemporaries(target: string, names: readonly string[]): string[] {
  const base = basename(target);
  return names.filter((name) => {
    const match = TEMP.exec(name);
    return match !== null && match[1] === base && match[2] === HOST && Number(match[3]) !== process.pid && !processAlive(Number(match[3]));
  });
}

function clearStaleSync(target: string): void {
  try {
    for (const name of staleTemporaries(target, readdirSync(dirname(target)))) rmSync(join(dirname(target), name), { force: true });
  } catch {
    // Tidying only: a folder that cannot be listed or a file another process removed first is fine.
  }
}

async function clearStale(target: string): Promise<void> {
  try {
    for (const name of staleTemporaries(target, await readdir(dirname(target)))) await rm(join(dirname(target), name), { force: true });
  } catch {
    // As above.
  }
}

/**
 * Replaces `target` with `data` so that a crash at any moment leaves the old content or the new one:
 * a synced temporary file in the same folder, renamed over it, then the folder synced. The folder must
 * exist. On failure the temporary file is removed and the target is as it was.
 */
export function writeFileDurableSync(target: string, data: DurableData, options: DurableWriteOptions = {}): void {
  const temporary = temporaryFor(target);
  try {
    const fd = openSync(temporary, 'wx', options.mode ?? 0o666);
    try {
      writeAll(fd, chunks(data));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  publishSync(temporary, target);
}

/** writeFileDurableSync on libuv's threads: the calling thread stays free meanwhile. */
export async function writeFileDurable(target: string, data: DurableData, options: DurableWriteOptions = {}): Promise<void> {
  const temporary = temporaryFor(target);
  try {
    const handle = await open(temporary, 'wx', options.mode ?? 0o666);
    try {
      await writeAllAsync(handle, chunks(data));
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await publish(temporary, target);
}

/** Renames a complete temporary file over `target` and makes the rename durable (the temporary goes on failure). */
async function publish(temporary: string, target: string): Promise<void> {
  try {
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncFolder(dirname(target));
  await clearStale(target);
}

/** publish on this thread. */
function publishSync(temporary: string, target: string): void {
  try {
    renameSync(temporary, target);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  syncFolderSync(dirname(target));
  clearStaleSync(target);
}

/**
 * Makes `target` what `source` is now, atomically (`source` stays): a hard link made aside and renamed
 * over `target`, or, where the filesystem has no hard links, a durable copy. The link costs no copy and
 * shares the inode, which is safe because durable writes never change a file in place: they rename a
 * new one over it.
 */
export async function replaceWithLink(source: string, target: string): Promise<void> {
  const temporary = temporaryFor(target);
  try {
    await link(source, temporary);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw error;
    await writeFileDurable(target, await readFile(source));
    return;
  }
  await publish(temporary, target);
}

/** replaceWithLink on this thread. */
export function replaceWithLinkSync(source: string, target: string): void {
  const temporary = temporaryFor(target);
  try {
    linkSync(source, temporary);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw error;
    writeFileDurableSync(target, readFileSync(source));
    return;
  }
  publishSync(temporary, target);
}

/**
 * Appends `data` to `target` (made if missing) and syncs it before returning, for append-only files
 * (the checkpoint journal): a crash can leave a torn last line, never lose an earlier one, so their
 * readers must check each line (the journal's lines carry checksums). A file made here has its folder
 * synced too.
 */
export async function appendFileDurable(target: string, data: DurableData): Promise<void> {
  const handle = await open(target, 'a');
  let made = false;
  try {
    made = (await handle.stat()).size === 0;
    await writeAllAsync(handle, chunks(data));
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (made) await syncFolder(dirname(target));
}
