/**
 * Snapshot names and scopes: what a coordinator may say about a worker's snapshot files. No path
 * crosses the wire: a worker keeps its snapshots itself, in a folder it chose (its state folder, or a
 * run folder's `snapshots/` for local threads), under the run's scope and the snapshot's name. Both are
 * short tokens that cannot leave that folder: letters, digits, '.', '_' and '-', starting with a letter
 * or digit, never '..' (so no separator, no parent, no hidden file, no absolute path).
 */

/** The most characters a snapshot name or scope has (a run id is a UUID: 36). */
export const MAX_SNAPSHOT_TOKEN = 128;

const TOKEN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Why `value` cannot be a snapshot name or scope, or null when it can. Never echoes more than the rule. */
export function snapshotTokenProblem(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return 'missing (a snapshot name: letters, digits, ".", "_" and "-")';
  if (value.length > MAX_SNAPSHOT_TOKEN) return `${value.length} characters, over the ${MAX_SNAPSHOT_TOKEN} a snapshot name may have`;
  if (!TOKEN.test(value) || value.includes('..')) return `${JSON.stringify(value)} is not a snapshot name: only letters, digits, ".", "_" and "-", starting with a letter or digit, no ".." (a name, never a path)`;
  return null;
}
