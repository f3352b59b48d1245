/**
 * The project's one error model. Every error a user can cause or meet is an EvoSearchError: its
 * message says what is wrong and where (the file, line, field, flag or folder), and its `code` says
 * what kind of failure it is, which decides the exit code of the command (README, "Exit codes"). Any
 * other exception reaching the CLI is a bug in this project (exit 1, with its stack).
 */

/** Each code, what the exit code is and why: fixing the input, the environment or a limit. */
export const ERROR_CODES = {
  /** Flags the command line parser refused. */
  usage: 2,
  /** A run configuration (config file or flags) that cannot run. */
  config: 2,
  /** A file the user gave (prompts, rewards, a bundle's configs) that cannot be read as what it should be. */
  'bad-file': 2,
  /** A prompt that the model or the scorers cannot take. */
  prompt: 2,
  /** A model bundle or model spec that cannot be opened, or a model that computed NaN. */
  model: 2,
  /** A run folder that is not free for this run (another run's, finished, locked). */
  'run-folder': 2,
  /** A CUDA provider source, archive or hash that is wrong (retrying the same fails the same way). */
  'cuda-install': 2,
  /** The plan goes past a limit (memory, threads, budget, population): the message names the flag that raises it. */
  limit: 4,
  /** A checkpoint that cannot be resumed from. */
  checkpoint: 3,
  /** No workers, a worker that refused or failed, a lost coordinator or NATS server. */
  unavailable: 3,
  /** A GPU provider, driver or library that is not there. */
  provider: 3,
  /** The file system or the network failed (a folder not writable, a disk full, a download broken). */
  io: 3,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Exit codes that are not error codes: success, a bug, and a signal (128 + its number). */
export const EXIT_OK = 0;
export const EXIT_BUG = 1;

export abstract class EvoSearchError extends Error {
  /** What kind of failure this is; decides the exit code (ERROR_CODES). */
  abstract readonly code: ErrorCode;

  get exitCode(): number {
    return ERROR_CODES[this.code];
  }
}

/** An error of the project's model built in place, for failures that need no class of their own. */
export class FailureError extends EvoSearchError {
  override readonly name = 'FailureError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The exit code for anything thrown: an EvoSearchError's, or EXIT_BUG. */
export function exitCodeOf(error: unknown): number {
  return error instanceof EvoSearchError ? error.exitCode : EXIT_BUG;
}
