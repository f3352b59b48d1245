/** The `evosearch` command as a user runs it: a child process of bin/evosearch.js from the repository root. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './repo-root.js';

export interface CliResult {
  /** The exit code (0 on success). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const EVOSEARCH_BIN = join(repoRoot(), 'bin', 'evosearch.js');

/** Runs `evosearch ...args` to its end and gives its exit code and output, whatever the code. */
export async function evosearch(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [EVOSEARCH_BIN, ...args], { cwd: repoRoot(), env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
