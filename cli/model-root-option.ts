/**
 * `--model-root <dir>` (repeatable) on the servers: the folders a worker loads models and rewards
 * from, and those whose bundles a coordinator lets clients name (worker/bundles/model-roots.ts).
 */
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError } from '../config/resolve-run-config.js';
import { MODEL_ROOT_FLAG } from '../worker/bundles/model-roots.js';

export function addModelRootOption(command: Command, help: string): Command {
  return command.option(`${MODEL_ROOT_FLAG} <dir>`, help, (dir: string, dirs: string[]) => [...dirs, dir], [] as string[]);
}

/** The roots given, each checked to be a folder now rather than at the first run that needs it. */
export function checkedModelRoots(roots: readonly string[]): readonly string[] {
  for (const root of roots) {
    if (!isFolder(root)) throw new ConfigError(MODEL_ROOT_FLAG, `'${root}' is not a folder`, 'command-line flags');
  }
  return roots;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
