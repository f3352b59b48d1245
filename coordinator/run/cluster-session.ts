/**
 * A run's part in a cluster (`--cluster`): its NATS connection, the mirror of its checkpoint in
 * JetStream, its events on NATS subjects, and the workers that register while it runs. A run without
 * a cluster has none of this.
 */
import type { Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import type { WorkerPool } from '../../proto/worker-pool.js';
import { publishRunEvent, type RunEvent, type RunEventListener, type RunEventPayload } from '../../cluster/events.js';
import { closeNats, connectNats } from '../../cluster/nats-connection.js';
import { withTimeout } from '../../async/timeouts-and-turns.js';
import { CheckpointMirror, unauthenticatedMirrorWarning } from '../checkpoint/checkpoint-mirror.js';
import type { CheckpointManifest } from '../checkpoint/checkpoint-store.js';
import { joinNewWorkers } from '../transport/cluster-pool.js';
import { GrpcWorkerPool } from '../transport/grpc-pool.js';

/** Minimum time between two looks at the cluster's membership during a run. */
const MEMBERSHIP_CHECK_MS = 1000;

export class ClusterSession {
  private constructor(
    /** The run's connection: the cluster's workers are found through it (open-worker-pool.ts). */
    readonly nc: NatsConnection,
    private readonly runId: string,
    private readonly mirror: CheckpointMirror,
    private readonly logger: Logger,
  ) {}

  static async open(url: string, runId: string, logger: Logger): Promise<ClusterSession> {
    const nc = await connectNats(url, `evosearch run ${runId}`);
    // Cluster runs also keep their checkpoint in NATS, so any machine of the cluster can resume them;
    // without a cluster key, whoever can write there can change it (said once per process).
    const unauthenticated = unauthenticatedMirrorWarning();
    if (unauthenticated !== null) logger.warn(unauthenticated);
    return new ClusterSession(nc, runId, new CheckpointMirror(nc, runId), logger);
  }

  /** Queues one round's journal line, and the manifest naming it, for the store (CheckpointWriter's mirror). */
  mirrorRound(round: number, line: string, manifest: string): void {
    this.mirror.put(round, line, manifest);
  }

  /**
   * A resumed run first gives the store the rounds it lacks (the run may have been resumed from its
   * folder after a NATS outage), so the store never names a round it has not got.
   */
  mirrorResumedRounds(folder: string, manifest: CheckpointManifest): Promise<void> {
    return this.mirror.resumeFrom(folder, manifest);
  }

  /** Publishes one of the run's events on its NATS subject, as its RunEvent message. */
  publish<K extends RunEvent>(event: K, payload: RunEventPayload<K>): void {
    publishRunEvent(this.nc, this.runId, event, payload);
  }

  /**
   * A Dispatcher's beforeRound: workers that registered after the start join `pool` at the next round,
   * announced through `publish`. Undefined for a pool that cannot grow (not gRPC).
   */
  joinBetweenRounds(pool: WorkerPool, publish: RunEventListener): (() => Promise<void>) | undefined {
    if (!(pool instanceof GrpcWorkerPool)) return undefined;
    const { nc, logger } = this;
    let last = Date.now();
    // Looked at every second: a worker that stays unusable is named once, not every second.
    const warned = new Set<string>();
    const onSkip = (warning: string) => {
      if (warned.has(warning)) return;
      warned.add(warning);
      logger.warn(warning);
    };
    return async () => {
      if (Date.now() - last < MEMBERSHIP_CHECK_MS) return;
      last = Date.now();
      let added: string[];
      try {
        // NATS carries membership, not the work: while it is down the run goes on with the workers it has.
        added = await withTimeout(joinNewWorkers(nc, pool, pool.build, onSkip), MEMBERSHIP_CHECK_MS, 'looking for new workers in NATS');
      } catch (error) {
        logger.warn({ error: (error as Error).message }, 'cluster membership unavailable; going on with the current workers');
        return;
      }
      if (added.length > 0) {
        logger.info({ added, workers: pool.size }, 'workers joined');
        publish('workers', { added, workers: pool.addresses });
      }
    };
  }

  /** Waits for the mirror to catch up (a failure only warns: the run folder has the checkpoint), then closes the connection. */
  async leave(): Promise<void> {
    const failure = await this.mirror.flush();
    if (failure) this.logger.warn({ error: failure.message }, 'checkpoint not mirrored to NATS (the run folder has it)');
    await closeNats(this.nc);
  }
}
