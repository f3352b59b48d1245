/**
 * The folders a server loads models and rewards from (`--model-root`, repeatable). A worker's default:
 * the bundle it serves and the repository's models/bundles; a path a coordinator names (RunSetup.rewards,
 * and what that manifest names: reward graphs, tokenizer folders) is refused unless it lies inside one of
 * them once its symbolic links are followed. A coordinator's default: the repository's models/bundles;
 * the model a client's Submit names is read (its manifest, to plan the run) only from inside them. The check looks at nothing outside
 * the roots, and the refusal is the same whether the path exists or not: it tells a caller nothing about
 * the worker's other files. A local run has no roots: its files are its user's own.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

/** The setting that widens the roots, as errors name it. */
export const MODEL_ROOT_FLAG = '--model-root';

/** Whose roots they are, as a refusal names them. */
export type ModelRootsOwner = 'worker' | 'coordinator';

const DEFAULT_ROOTS: Record<ModelRootsOwner, string> = {
  worker: "the folder of the model it serves, and the repository's models/bundles",
  coordinator: "the repository's models/bundles",
};

/** A path outside a server's model roots: names what gave it and the setting. */
export class OutsideModelRootsError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'OutsideModelRootsError';
  constructor(readonly what: string, readonly path: string, owner: ModelRootsOwner) {
    super(`${what}: ${JSON.stringify(path)} is outside this ${owner}'s model roots; a ${owner} loads models${owner === 'worker' ? ' and rewards' : ''} only from the folders its ${MODEL_ROOT_FLAG} flags name (default: ${DEFAULT_ROOTS[owner]})`);
  }
}

/** The bundles this repository ships (models/bundles). */
export const BUNDLED_MODELS = fileURLToPath(new URL('../../../models/bundles', import.meta.url));

/**
 * A worker's model roots: the bundle folder it serves (null: an analytic model), and the folders its
 * --model-root flags give, or the repository's bundled models when it gives none.
 */
export function workerModelRoots(servedBundle: string | null, given: readonly string[]): string[] {
  return [...(servedBundle === null ? [] : [resolve(servedBundle)]), ...(given.length > 0 ? given.map((root) => resolve(root)) : [BUNDLED_MODELS])];
}

export class ModelRoots {
  /** The roots, their links followed. */
  readonly folders: readonly string[];

  constructor(folders: readonly string[], readonly owner: ModelRootsOwner = 'worker') {
    this.folders = folders.map(followLinks);
  }

  /**
   * `path` (absolute, or relative to the process's folder) with its links followed, when it lies inside
   * a root; an OutsideModelRootsError naming `what` otherwise. A lexical check comes first, so a path
   * that names a place outside the roots is refused without a look at the file system.
   */
  confine(path: string, what: string): string {
    const absolute = resolve(path);
    if (!this.holds(absolute)) throw new OutsideModelRootsError(what, path, this.owner);
    const real = followLinks(absolute);
    if (!this.holds(real)) throw new OutsideModelRootsError(what, path, this.owner);
    return real;
  }

  private holds(path: string): boolean {
    return this.folders.some((root) => path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`));
  }
}

/**
 * `path` with every link followed: of its longest part that exists (a missing file's folder may still be
 * a link), and the rest as written.
 */
function followLinks(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    const parent = dirname(absolute);
    return parent === absolute ? absolute : join(followLinks(parent), basename(absolute));
  }
}
