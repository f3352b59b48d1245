/**
 * Checkpoints of cluster runs in NATS JetStream's object store (bucket `evosearch-checkpoints`), so a
 * run can be resumed on any machine that reaches the cluster, not only where its coordinator ran.
 * Each round is its own object (`<runId>/round-<n>`, the journal line), and the manifest
 * (`<runId>/manifest`) names how many rounds there are.
 *
 * The mirror is consistent at every instant: a manifest is put only once every round it names is in
 * the store. A put that fails (NATS down, a JetStream timeout) leaves its round queued, not skipped:
 * the next round's put, or the run's final flush, retries from the first round the store lacks, so
 * the mirror catches up once NATS is back. A resumed run first puts the rounds of its journal that the
 * store lacks (it may have been resumed from the folder after an outage), then its new ones.
 *
 * The store is as trustworthy as everyone who may write to it: with a cluster key (cluster-key.ts) the
 * rounds and manifests put here are sealed with it, and a fetch checks every object before it writes a
 * byte to the folder. Without one, anyone who can write the bucket can change a run's rewards.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { createBucketOnce } from '../../cluster/create-jetstream-bucket.js';
import { writeFileDurable } from '../../files/durable-write.js';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { checkJournalLine, checkManifest, CheckpointError, JOURNAL_FILE, MANIFEST_FILE, type CheckpointManifest } from './checkpoint-store.js';
import { CLUSTER_KEY_ENV, processClusterKey, type ClusterKey } from './cluster-key.js';

export const CHECKPOINTS_BUCKET = 'evosearch-checkpoints';

/** The object store could not be read: names the bucket and the run, and the server's reason. */
export class CheckpointStoreError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'CheckpointStoreError';
  constructor(runId: string, options: { cause: unknown }) {
    const reason = (options.cause as Error).message;
    super(`NATS object store ${CHECKPOINTS_BUCKET}: cannot read the checkpoint of run ${runId} (${reason}${deniedByPermissions(options.cause) ? '; what this NATS user may do is the server\'s configuration: docs/cluster-security.md' : ''})`, options);
  }
}

/** Whether NATS refused the operation by this user's permissions: that does not pass with time, so it is not retried. */
function deniedByPermissions(error: unknown): boolean {
  return error instanceof PermissionViolationError || (error instanceof Error && /Permissions Violation/.test(error.message));
}

const roundName = (runId: string, round: number) => `${runId}/round-${String(round).padStart(6, '0')}`;
const manifestName = (runId: string) => `${runId}/manifest`;

async function store(nc: NatsConnection): Promise<ObjectStore> {
  return createBucketOnce(() => new Objm(nc).create(CHECKPOINTS_BUCKET));
}

export interface MirrorFlushOptions {
  /** How long the final flush keeps retrying while NATS is away (ms). */
  readonly retryForMs?: number;
  /** Pause between retries (ms). */
  readonly retryEveryMs?: number;
}

/** Puts rounds and manifests in order, one at a time, as the run appends them; catches up after a failure. */
export class CheckpointMirror {
  /** Rounds not yet in the store, oldest first. */
  private readonly pending: { readonly round: number; readonly line: string }[] = [];
  /** The newest manifest not yet in the store (it names every pending round). */
  private manifest: string | null = null;
  private draining: Promise<void> | null = null;
  /** The last put that failed since the mirror was last caught up (null: caught up, or nothing failed). */
  private failure: Error | null = null;
  /** The bucket, opened once (a JetStream request); dropped after a failure, so the next pass opens it again. */
  private bucket: Promise<ObjectStore> | null = null;

  constructor(private readonly nc: NatsConnection, private readonly runId: string) {}

  private store(): Promise<ObjectStore> {
    return (this.bucket ??= store(this.nc));
  }

  /** Queues one round (its journal line) and the manifest that names it, and starts putting them. */
  put(round: number, line: string, manifest: string): void {
    this.pending.push({ round, line });
    this.manifest = manifest;
    void this.drain();
  }

  /**
   * For a resumed run: queues the rounds of `folder`'s journal (those `manifest` names) that the store
   * lacks, so the store never holds a manifest naming rounds it does not have.
   */
  async resumeFrom(folder: string, manifest: CheckpointManifest): Promise<void> {
    const journal = (await readFile(join(folder, JOURNAL_FILE))).subarray(0, manifest.journalBytes).toString('utf8');
    const lines = journal.split(/(?<=\n)/).slice(0, manifest.rounds);
    let missing: number[];
    try {
      const os = await this.store();
      missing = [];
      for (let round = 0; round < lines.length; round++) if ((await os.info(roundName(this.runId, round))) === null) missing.push(round);
    } catch (error) {
      // NATS away: assume the store has none of them; re-putting a round it has is harmless.
      this.failure = error as Error;
      this.bucket = null;
      missing = lines.map((_, round) => round);
    }
    this.pending.unshift(...missing.map((round) => ({ round, line: lines[round]! })));
    if (missing.length > 0) this.manifest ??= JSON.stringify(manifest);
    void this.drain();
  }

  /** One pass over what is queued; stops at the first failure (kept for the next pass). */
  private drain(): Promise<void> {
    this.draining ??= (async () => {
      try {
        const os = await this.store();
        while (this.pending.length > 0) {
          const next = this.pending[0]!;
          await os.putBlob({ name: roundName(this.runId, next.round) }, new TextEncoder().encode(next.line));
          this.pending.shift();
        }
        const manifest = this.manifest;
        if (manifest !== null) {
          await os.putBlob({ name: manifestName(this.runId) }, new TextEncoder().encode(manifest));
          if (this.manifest === manifest && this.pending.length === 0) this.manifest = null;
        }
        this.failure = null;
      } catch (error) {
        this.failure = error as Error;
        this.bucket = null;
      } finally {
        this.draining = null;
      }
      // Rounds queued while the pass was putting others, after the pass had passed them.
      if (this.failure === null && (this.pending.length > 0 || this.manifest !== null)) await this.drain();
    })();
    return this.draining;
  }

  /** Rounds the store still lacks. */
  get behind(): number {
    return this.pending.length;
  }

  /**
   * Waits until the store has everything queued, retrying for `retryForMs` (NATS may be coming back);
   * then null, or the last failure when the mirror is still behind (the local checkpoint is unaffected).
   */
  async flush(options: MirrorFlushOptions = {}): Promise<Error | null> {
    const deadline = Date.now() + (options.retryForMs ?? 30_000);
    for (;;) {
      await (this.draining ?? this.drain());
      if (this.pending.length === 0 && this.manifest === null) return null;
      if (Date.now() >= deadline || deniedByPermissions(this.failure)) return this.failure ?? new Error(`checkpoint mirror of run ${this.runId}: ${this.pending.length} round(s) not put`);
      await sleep(options.retryEveryMs ?? 500);
      await this.drain();
    }
  }
}

/**
 * What a cluster run without a cluster key warns, once per process (a coordinator serves many runs),
 * then null.
 */
let unauthenticatedWarned = false;
export function unauthenticatedMirrorWarning(key: ClusterKey | null = processClusterKey()): string | null {
  if (key !== null || unauthenticatedWarned) return null;
  unauthenticatedWarned = true;
  return `checkpoints mirrored to NATS (${CHECKPOINTS_BUCKET}) are not authenticated: anyone who can write that bucket can change what a resume continues; give every coordinator and client the same cluster key (--cluster-key FILE or ${CLUSTER_KEY_ENV}; make one with \`openssl rand -hex 32 > cluster.key\`)`;
}

/**
 * Writes a run's checkpoint from the object store into `folder` (then read it as any checkpoint).
 * With a cluster key (default: the process's) the manifest and every round are checked against it
 * first: a CheckpointError naming the object, and nothing written, when one was not sealed with it.
 */
export async function fetchCheckpoint(nc: NatsConnection, runId: string, folder: string, key: ClusterKey | null = processClusterKey()): Promise<boolean> {
  const os = store(nc);
  const get = async (name: string) => {
    try {
      return await (await os).getBlob(name);
    } catch (error) {
      throw new CheckpointStoreError(runId, { cause: error });
    }
  };
  const manifest = await get(manifestName(runId));
  if (manifest === null) return false;
  const where = (name: string) => `${CHECKPOINTS_BUCKET}/${name}`;
  const checked = key === null ? null : checkManifest(manifest, where(manifestName(runId)), key);
  if (checked !== null && checked.runId !== runId) throw new CheckpointError(where(manifestName(runId)), `is the checkpoint of run ${checked.runId}, not of run ${runId}`);
  const { rounds } = checked ?? (JSON.parse(new TextDecoder().decode(manifest)) as { rounds: number });
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const line = await get(roundName(runId, round));
    if (line === null) throw new Error(`checkpoint of run ${runId} in ${CHECKPOINTS_BUCKET}: round ${round} is missing`);
    lines.push(new TextDecoder().decode(line));
    if (checked !== null) checkJournalLine(lines[round]!, round, checked, key, where(roundName(runId, round)));
  }
  await mkdir(folder, { recursive: true });
  // The journal before the manifest that points into it, each whole or not at all.
  await writeFileDurable(join(folder, JOURNAL_FILE), lines.join(''));
  await writeFileDurable(join(folder, MANIFEST_FILE), manifest);
  return true;
}
