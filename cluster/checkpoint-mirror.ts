/**
 * Checkpoints of cluster runs in NATS JetStream's object store (bucket `evosearch-checkpoints`), so a
 * run can be resumed on any machine that reaches the cluster, not only where its coordinator ran.
 * Each round is its own object (`<runId>/round-<n>`, the journal line), and the manifest
 * (`<runId>/manifest`) is put after it: a reader that finds the manifest finds every round it names.
 */
import { mkdir } from 'node:fs/promises';
import { writeFileDurable } from '../files/durable-write.js';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { JOURNAL_FILE, MANIFEST_FILE } from '../coordinator/checkpoint/checkpoint-store.js';

export const CHECKPOINTS_BUCKET = 'evosearch-checkpoints';

const roundName = (runId: string, round: number) => `${runId}/round-${String(round).padStart(6, '0')}`;
const manifestName = (runId: string) => `${runId}/manifest`;

async function store(nc: NatsConnection): Promise<ObjectStore> {
  return new Objm(nc).create(CHECKPOINTS_BUCKET);
}

/** Puts rounds and manifests in order, one at a time, as the run appends them. */
export class CheckpointMirror {
  private queue: Promise<void> = Promise.resolve();
  private failure: Error | null = null;

  constructor(private readonly nc: NatsConnection, private readonly runId: string) {}

  /** Queues one round (its journal line) and the manifest that names it. */
  put(round: number, line: string, manifest: string): void {
    this.queue = this.queue.then(async () => {
      const os = await store(this.nc);
      await os.putBlob({ name: roundName(this.runId, round) }, new TextEncoder().encode(line));
      await os.putBlob({ name: manifestName(this.runId) }, new TextEncoder().encode(manifest));
    }).catch((error: Error) => {
      this.failure ??= error;
    });
  }

  /** Waits for what is queued; the first failure, if any (the local checkpoint is unaffected). */
  async flush(): Promise<Error | null> {
    await this.queue;
    return this.failure;
  }
}

/** Writes a run's checkpoint from the object store into `folder` (then read it as any checkpoint). */
export async function fetchCheckpoint(nc: NatsConnection, runId: string, folder: string): Promise<boolean> {
  const os = await store(nc);
  const manifest = await os.getBlob(manifestName(runId));
  if (manifest === null) return false;
  const { rounds } = JSON.parse(new TextDecoder().decode(manifest)) as { rounds: number };
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const line = await os.getBlob(roundName(runId, round));
    if (line === null) throw new Error(`checkpoint of run ${runId} in ${CHECKPOINTS_BUCKET}: round ${round} is missing`);
    lines.push(new TextDecoder().decode(line));
  }
  await mkdir(folder, { recursive: true });
  // The journal before the manifest that points into it, each whole or not at all.
  await writeFileDurable(join(folder, JOURNAL_FILE), lines.join(''));
  await writeFileDurable(join(folder, MANIFEST_FILE), manifest);
  return true;
}
