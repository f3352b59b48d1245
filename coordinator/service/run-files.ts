/**
 * What of a run folder the coordinator's Files call serves: the regular files of the folder it made.
 * A run folder that is a symbolic link (one swapped in after the run would serve whatever it points
 * at: /etc, a home folder), a file that is one, or a file that resolves outside the folder is refused,
 * naming it. Files are opened without following links, so a link swapped in after the check is refused
 * too. Subfolders (a run's snapshots) are not the run's output and are not sent.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

/** A run folder, or a file in it, that the coordinator will not serve. */
export class UnservableRunFileError extends EvoSearchError {
  readonly code: ErrorCode = 'run-folder';
  override readonly name = 'UnservableRunFileError';
}

/** The run's files in `folder`, each whole, but those `skip` names (the service's own). */
export async function* servableRunFiles(folder: string, skip: (name: string) => boolean): AsyncGenerator<{ readonly name: string; readonly bytes: Buffer }> {
  const refuse = (what: string): never => {
    throw new UnservableRunFileError(`${what}: not served (a run's files are the regular files of the folder its coordinator made)`);
  };
  const info = await lstat(folder);
  if (info.isSymbolicLink()) refuse('its folder is a symbolic link, not the folder this coordinator made');
  if (!info.isDirectory()) refuse('its folder is not a folder');
  const real = await realpath(folder);
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    if (skip(entry.name) || entry.isDirectory()) continue;
    if (entry.isSymbolicLink()) refuse(`its file ${entry.name} is a symbolic link`);
    if (!entry.isFile()) continue;
    const path = join(folder, entry.name);
    // O_NOFOLLOW: a link put in the file's place since readdir fails the open (ELOOP) instead of being followed.
    const handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0)).catch((error: NodeJS.ErrnoException) => (error.code === 'ELOOP' ? refuse(`its file ${entry.name} is a symbolic link`) : Promise.reject(error)));
    try {
      if (!(await handle.stat()).isFile()) refuse(`its file ${entry.name} is not a regular file`);
      if (dirname(await realpath(path)) !== real) refuse(`its file ${entry.name} resolves outside the run folder`);
      yield { name: entry.name, bytes: await handle.readFile() };
    } finally {
      await handle.close();
    }
  }
}
