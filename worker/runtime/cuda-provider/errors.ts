import { EvoSearchError, type ErrorCode } from '../../../errors/evosearch-error.js';
/**
 * Why a CUDA provider install or check could not go on. `kind` decides the CLI's exit code: 'input' is
 * something the user gave or fetched that is wrong (source, archive, hash, platform: retrying the same
 * thing fails the same way); 'io' is the machine or the network (a folder not writable, a download that
 * broke, npm failing: retrying may work).
 */
export class CudaProviderError extends EvoSearchError {
  override readonly name = 'CudaProviderError';
  get code(): ErrorCode {
    return this.kind === 'io' ? 'io' : 'cuda-install';
  }
  constructor(
    readonly kind: 'input' | 'io',
    /** The file, folder, URL or flag the message is about. */
    readonly subject: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${subject}: ${detail}`, options);
  }
}

/** The system's words for a failed fs call ("EACCES: permission denied, mkdir '…'") without the stack. */
export function systemMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
