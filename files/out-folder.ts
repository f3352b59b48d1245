/**
 * Makes sure an output folder (`--out`) can hold a run before any model opens: it exists or can be
 * created, it is a folder, and a file can be written and renamed in it (what every checkpoint write
 * does). Each problem is one line naming the folder, what is wrong and what to do, instead of a raw
 * `EEXIST` / `EACCES` text or, under /proc, a hang: Node's recursive mkdir loops for ever where the
 * kernel answers ENOENT for a folder whose parent exists. So folders are made one level at a time, the
 * filesystem's type is looked at first (proc, sysfs and the like hold no files), and every call has a
 * deadline, so a hung network mount is reported instead of waited on.
 */
import { lstat, mkdir, open, rename, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Stats } from 'node:fs';
import { withTimeout } from '../async/timeouts-and-turns.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** How long the whole check may take before the filesystem is reported as not answering. */
export const OUT_FOLDER_TIMEOUT_MS = 10_000;

/** An output folder a run cannot write: one line, naming the folder, what is wrong and what to do. */
export class OutFolderError extends EvoSearchError {
  override readonly name = 'OutFolderError';
  constructor(
    readonly code: ErrorCode,
    readonly folder: string,
    detail: string,
    /** The filesystem did not answer in time: a call may still be pending in this process. */
    readonly timedOut = false,
    options?: { cause?: unknown },
  ) {
    super(`--out ${folder}: ${detail}`, options);
  }
}

/**
 * Filesystems of the kernel's own state (linux/magic.h): no run folder can live there. Their f_type,
 * with what a user would call them.
 */
const SPECIAL_FILESYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "a proc filesystem (the kernel's view of its processes)"],
  [0x62656572, "a sysfs filesystem (the kernel's view of its devices)"],
  [0x27e0eb, 'a cgroup filesystem'],
  [0x63677270, 'a cgroup2 filesystem'],
  [0x64626720, 'a debugfs filesystem'],
  [0x74726163, 'a tracefs filesystem'],
  [0x73636673, 'a securityfs filesystem'],
  [0xcafe4a11, 'a bpf filesystem'],
  [0x6165676c, 'a pstore filesystem'],
  [0xde5e81e4, 'an efivarfs filesystem'],
  [0x62656570, 'a configfs filesystem'],
  [0xf97cff8c, 'a selinuxfs filesystem'],
  [0x65735543, 'a fusectl filesystem'],
  [0x1cd1, 'a devpts filesystem (terminals)'],
  [0x19800202, 'an mqueue filesystem (message queues)'],
  [0x42494e4d, 'a binfmt_misc filesystem'],
  [0x6e736673, 'an nsfs filesystem (namespaces)'],
  [0x958458f6, 'a hugetlbfs filesystem (huge memory pages)'],
]);

/** What a non-folder is, for "X is a file, not a folder". */
function kindOf(st: Stats): string {
  if (st.isFile()) return 'a file';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a folder';
}

function whoAmI(): { name: string; home: string | null } {
  try {
    const me = userInfo();
    return { name: me.username, home: me.homedir !== '' && existsSync(me.homedir) ? me.homedir : null };
  } catch {
    return { name: `uid ${process.getuid?.() ?? '?'}`, home: null };
  }
}

/**
 * What a failed file-system call means for a folder a run wants to write, in words, and its error
 * code: `action` is what was being done ("create /x/y"), `path` the path it was about.
 */
export function describeFsFailure(error: unknown, action: string, path: string): { code: ErrorCode; text: string } {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (errno) {
    case 'EACCES':
    case 'EPERM': {
      const me = whoAmI();
      return { code: 'io', text: `no permission to ${action} (running as ${me.name}); choose a folder you can write${me.home === null ? '' : ` (such as one under ${me.home})`}, or change the permissions of ${path}` };
    }
    case 'EROFS':
      return { code: 'io', text: `cannot ${action}: ${path} is on a read-only filesystem; choose a folder on a writable disk` };
    case 'ENOSPC':
      return { code: 'io', text: `cannot ${action}: the disk holding ${path} is full; free some space or choose a folder on another disk` };
    case 'EDQUOT':
      return { code: 'io', text: `cannot ${action}: the disk quota on ${path} is used up; free some space or choose a folder on another disk` };
    case 'ENAMETOOLONG':
      return { code: 'run-folder', text: `cannot ${action}: the path is longer than the filesystem allows; choose a shorter --out` };
    case 'ELOOP':
      return { code: 'run-folder', text: `cannot ${action}: ${path} is a loop of symbolic links; fix the link or choose another --out` };
    case 'ENOTDIR':
    case 'EEXIST':
      return { code: 'run-folder', text: `cannot ${action}: something that is not a folder is in the way at ${path}; move it away or choose another --out` };
    case 'ENOENT':
      return { code: 'run-folder', text: `cannot ${action}: the filesystem at ${path} does not let folders or files be made there; choose a folder on a disk` };
    default: {
      const why = errno ?? (error instanceof Error ? error.message : String(error));
      return { code: 'io', text: `cannot ${action}: the filesystem failed (${why}); check the disk or choose another --out` };
    }
  }
}

/** The top of the filesystem `path` is on: its farthest ancestor on the same device. */
async function mountPointOf(path: string, device: number, within: <T>(p: Promise<T>, what: string) => Promise<T>): Promise<string> {
  let top = path;
  for (let parent = dirname(top); parent !== top; parent = dirname(top)) {
    try {
      if ((await within(stat(parent), `looking at ${parent}`)).dev !== device) break;
    } catch (error) {
      if (error instanceof OutFolderError) throw error;
      break;
    }
    top = parent;
  }
  return top;
}

export interface PreparedOutFolder {
  /** The folder, absolute. */
  readonly folder: string;
  /** Folders this call created, outermost first. */
  readonly created: readonly string[];
}

/**
 * Makes `folder` (and any missing parents) and checks a file can be written and renamed in it; throws
 * OutFolderError, naming the folder, what is wrong and what to do. `timeoutMs` bounds the whole check.
 */
export async function prepareOutFolder(folderArg: string, options: { readonly timeoutMs?: number } = {}): Promise<PreparedOutFolder> {
  const folder = resolve(folderArg);
  const timeoutMs = options.timeoutMs ?? OUT_FOLDER_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const fail = (code: ErrorCode, detail: string, cause?: unknown): OutFolderError => new OutFolderError(code, folder, detail, false, cause === undefined ? undefined : { cause });
  // A call that ends after the deadline is dropped (never an unhandled rejection).
  const within = <T>(call: Promise<T>, what: string): Promise<T> =>
    withTimeout(
      call,
      Math.max(0, deadline - Date.now()),
      () => new OutFolderError('io', folder, `the filesystem did not answer within ${(timeoutMs / 1000).toFixed(0)} s while ${what} (a hung network mount?); choose a folder on a local disk`, true),
    );
  const inTheWay = (path: string, st: Stats): OutFolderError =>
    path === folder
      ? fail('run-folder', `is ${kindOf(st)}, not a folder; choose another --out, or move it away`)
      : fail('run-folder', `${path} is ${kindOf(st)}, not a folder, so no folder can be made inside it; choose another --out, or move ${path} away`);

  // The nearest part of the path that exists, and the folders below it still to make.
  let existing = folder;
  const missing: string[] = [];
  for (;;) {
    try {
      const st = await within(stat(existing), `looking at ${existing}`);
      if (!st.isDirectory()) throw inTheWay(existing, st);
      break;
    } catch (error) {
      if (error instanceof OutFolderError) throw error;
      const errno = (error as NodeJS.ErrnoException).code;
      if (errno === 'ENOENT' || errno === 'ENOTDIR') {
        if (errno === 'ENOENT') {
          const link = await within(lstat(existing), `looking at ${existing}`).catch((e: unknown) => {
            if (e instanceof OutFolderError) throw e;
            return null;
          });
          if (link?.isSymbolicLink()) throw fail('run-folder', `${existing} is a symbolic link to something that does not exist; fix or remove the link, or choose another --out`);
        }
        const parent = dirname(existing);
        if (parent === existing) throw fail('io', describeFsFailure(error, `look at ${existing}`, existing).text, error);
        missing.unshift(existing);
        existing = parent;
        continue;
      }
      // EACCES here: a folder above it may not be entered.
      const { code, text } = describeFsFailure(error, `look at ${existing}`, dirname(existing));
      throw fail(code, text, error);
    }
  }

  // Kernel filesystems (/proc, /sys, …): say so, instead of whatever their calls answer.
  try {
    const fs = await within(statfs(existing), `looking at ${existing}`);
    const special = SPECIAL_FILESYSTEMS.get(Number(fs.type));
    if (special !== undefined) {
      const top = await mountPointOf(existing, (await within(stat(existing), `looking at ${existing}`)).dev, within);
      throw fail('run-folder', `${top} is ${special}, not storage: no run folder can be made there; choose a folder on a disk (such as --out runs/${basename(folder) || 'run'})`);
    }
  } catch (error) {
    if (error instanceof OutFolderError) throw error;
    // statfs itself failing says nothing: the calls below report what is wrong.
  }

  const created: string[] = [];
  const undo = async () => {
    for (const dir of [...created].reverse()) await within(rmdir(dir), `removing ${dir}`).catch(() => undefined);
  };
  try {
    for (const dir of missing) {
      try {
        await within(mkdir(dir), `creating ${dir}`);
        created.push(dir);
      } catch (error) {
        if (error instanceof OutFolderError) throw error;
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          // Made by someone else meanwhile, or something else is there.
          const st = await within(stat(dir), `looking at ${dir}`).catch((e: unknown) => {
            if (e instanceof OutFolderError) throw e;
            return null;
          });
          if (st?.isDirectory()) continue;
          if (st !== null) throw inTheWay(dir, st);
        }
        const { code, text } = describeFsFailure(error, `create ${dir === folder ? 'it' : dir}`, dirname(dir));
        throw fail(code, text, error);
      }
    }
    await probeWrite(folder, within, fail);
  } catch (error) {
    if (!(error instanceof OutFolderError && error.timedOut)) await undo();
    throw error;
  }
  return { folder, created };
}

/** Writes a small file in `folder`, renames it, and removes it: what every checkpoint write needs. */
async function probeWrite(
  folder: string,
  within: <T>(p: Promise<T>, what: string) => Promise<T>,
  fail: (code: ErrorCode, detail: string, cause?: unknown) => OutFolderError,
): Promise<void> {
  const name = join(folder, `.evosearch-write-test-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  const written = `${name}.tmp`;
  let step = 'write a file in it';
  try {
    const handle = await within(open(written, 'wx'), `writing a test file in ${folder}`);
    try {
      await within(handle.writeFile('evosearch write test\n'), `writing a test file in ${folder}`);
    } finally {
      await within(handle.close(), `writing a test file in ${folder}`).catch((e: unknown) => {
        if (e instanceof OutFolderError) throw e;
      });
    }
    step = 'rename a file in it';
    await within(rename(written, name), `renaming a test file in ${folder}`);
    step = 'remove a file from it';
    await within(rm(name, { force: true }), `removing a test file from ${folder}`);
  } catch (error) {
    await within(rm(written, { force: true }), `removing a test file from ${folder}`).catch(() => undefined);
    await within(rm(name, { force: true }), `removing a test file from ${folder}`).catch(() => undefined);
    if (error instanceof OutFolderError) throw error;
    const { code, text } = describeFsFailure(error, step, folder);
    throw fail(code, text, error);
  }
}
