/**
 * The names of a run folder's files as the coordinator's Files call sends them: a file of the folder
 * itself, never a path. Both ends check: the coordinator serves nothing else, and a client refuses a
 * chunk that names anything else before it writes a byte (a name with a separator or `..` would land
 * outside the folder it downloads into).
 */

/** Why `name` cannot be a run folder's file name, or null when it can. */
export function runFileNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name === '') return 'missing';
  if (name === '.' || name === '..' || /[/\\\0]/.test(name)) return `${JSON.stringify(name.slice(0, 200))} is not a file name of a run folder (a path separator, a NUL, or . or ..): refused, nothing written`;
  return null;
}
