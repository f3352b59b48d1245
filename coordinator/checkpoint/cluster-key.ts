/**
 * The cluster key: a secret shared by the machines that write and resume a cluster's checkpoints
 * (coordinators, and clients that run or resume searches themselves), so a checkpoint edited in the
 * NATS object store, or in a run folder, is refused instead of resumed. Checkpoints written with a key
 * carry HMAC-SHA256s where unkeyed ones carry sha256s (checkpoint-store.ts); workers never need it.
 *
 * The key is a file: its text, less trailing blanks, at least 32 bytes. Make one with
 *
 *     openssl rand -hex 32 > cluster.key && chmod 600 cluster.key
 *
 * (or `node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))" > cluster.key`)
 * and give it with `--cluster-key FILE` or EVOSEARCH_CLUSTER_KEY_FILE.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

export const CLUSTER_KEY_ENV = 'EVOSEARCH_CLUSTER_KEY_FILE';
/** 32 bytes: what HMAC-SHA256 needs for its full strength (`openssl rand -hex 32` gives 64). */
export const MIN_CLUSTER_KEY_BYTES = 32;

/** A key file that cannot be used: names the file, where it was given, and what is wrong. */
export class ClusterKeyError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'ClusterKeyError';
}

export class ClusterKey {
  /**
   * Names the key without revealing it (an HMAC of a fixed text under the key), so a checkpoint can
   * say which key wrote it and an error can tell "another key" from "no key".
   */
  readonly id: string;

  private constructor(
    private readonly secret: Buffer,
    /** Where the key came from, for messages: `--cluster-key cluster.key`. */
    readonly source: string,
  ) {
    this.id = createHmac('sha256', secret).update('evosearch cluster key id').digest('hex').slice(0, 16);
  }

  /** The key in `file`; `given` says how it was named (the flag or the environment variable). */
  static fromFile(file: string, given: string): ClusterKey {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      throw new ClusterKeyError(`${given} ${file}: cannot read the cluster key (${(error as Error).message})`, { cause: error });
    }
    return ClusterKey.fromBytes(bytes, `${given} ${file}`);
  }

  /** A key from its bytes (a file's content): trailing blanks, such as the newline `openssl` ends with, are not part of it. */
  static fromBytes(bytes: Uint8Array, source: string): ClusterKey {
    let end = bytes.length;
    while (end > 0 && [0x20, 0x09, 0x0a, 0x0d].includes(bytes[end - 1]!)) end--;
    if (end < MIN_CLUSTER_KEY_BYTES) {
      throw new ClusterKeyError(`${source}: a cluster key needs at least ${MIN_CLUSTER_KEY_BYTES} bytes, this one has ${end}; make one with \`openssl rand -hex 32 > cluster.key\``);
    }
    return new ClusterKey(Buffer.from(bytes.subarray(0, end)), source);
  }

  /** HMAC-SHA256 of `text` under the key, hex. */
  mac(text: string): string {
    return createHmac('sha256', this.secret).update(text).digest('hex');
  }
}

/**
 * The key this process uses where a caller names none: set by the command line (`useClusterKey`),
 * else read once from EVOSEARCH_CLUSTER_KEY_FILE, else none. It is per process, not per call, because
 * the coordinator service opens and resumes its runs' checkpoints itself.
 */
let processKey: ClusterKey | null | undefined;

export function useClusterKey(key: ClusterKey | null): void {
  processKey = key;
}

export function processClusterKey(): ClusterKey | null {
  if (processKey === undefined) processKey = clusterKeyFrom(undefined, '--cluster-key');
  return processKey;
}

/** The key a command was given: its flag's file, else EVOSEARCH_CLUSTER_KEY_FILE's, else none. */
export function clusterKeyFrom(flagFile: string | undefined, flag: string, env: NodeJS.ProcessEnv = process.env): ClusterKey | null {
  if (flagFile !== undefined) return ClusterKey.fromFile(flagFile, flag);
  const file = env[CLUSTER_KEY_ENV];
  return file === undefined || file === '' ? null : ClusterKey.fromFile(file, CLUSTER_KEY_ENV);
}
