import type { NatsConnection } from '@nats-io/transport-node';
import type { RunPlan } from '../../config/resolve-run-config.js';
import type { WorkerPool } from '../../proto/worker-pool.js';
import type { WorkerSetup } from '../../proto/worker-setup.js';
import type { TransportSecurity } from '../../proto/transport-security.js';
import type { WireMeter } from '../../metrics/wire-meter.js';
import { modelBuild } from '../../worker/model-build.js';
import { ThreadPool } from '../../worker/thread-pool.js';
import { clusterWorkerPool } from '../transport/cluster-pool.js';
import { GrpcWorkerPool } from '../transport/grpc-pool.js';

/** How the workers know a run, and where local threads keep its snapshots. */
export interface RunOnWorkers {
  /** The attempt: a resume starts a new session, so states left from an earlier one never mix in. */
  readonly session: string;
  /** The run, the same across its resumes: the scope of its snapshots on gRPC workers. */
  readonly runId: string;
  /** Local threads' snapshots (the run folder's `snapshots/`); absent: none. */
  readonly snapshotFolder?: string;
}

/**
 * A run's workers: the cluster's (found through `nc`, a `--cluster` run), the named gRPC workers
 * (`--workers-at`), or local threads. gRPC workers keep the run's snapshots under its id in their own
 * state folders; local threads in `run.snapshotFolder`. `transport`: how gRPC workers are reached
 * (default plaintext, loopback only); `warn` is told the cluster's entries and workers passed over;
 * `wire` is told the bytes of every message to and from gRPC workers.
 */
export async function openWorkerPool(plan: RunPlan, run: RunOnWorkers, nc: NatsConnection | null, options: { readonly transport?: TransportSecurity; readonly warn?: (warning: string) => void; readonly wire?: WireMeter } = {}): Promise<WorkerPool> {
  const setup = { ...workerSetupFor(plan), snapshotScope: run.runId };
  const transport = { ...(options.transport !== undefined ? { transport: options.transport } : {}), ...(options.wire !== undefined ? { wire: options.wire } : {}) };
  if (nc !== null) return clusterWorkerPool(nc, plan.cluster!, setup, run.session, await modelBuild(plan.model), { ...(options.warn !== undefined ? { warn: options.warn } : {}), ...transport });
  if (plan.workersAt !== undefined) return GrpcWorkerPool.connect(plan.workersAt, setup, { runId: run.session, expectedBuild: await modelBuild(plan.model), ...transport });
  return ThreadPool.start(plan.workers, workerSetupFor(plan), run.snapshotFolder !== undefined ? { snapshotFolder: run.snapshotFolder } : {});
}

/** What every worker of a plan's run is set up with. */
export function workerSetupFor(plan: RunPlan): WorkerSetup {
  return {
    model: plan.model,
    sampler: plan.sampler,
    seed: String(plan.seed),
    batchSize: plan.batchSize,
    ...(plan.callRows !== undefined ? { callRows: plan.callRows } : {}),
    ...(plan.prompt !== undefined ? { prompt: plan.prompt, negativePrompt: plan.negativePrompt, guidanceScale: plan.guidanceScale } : {}),
    ...(plan.rewards !== undefined ? { rewards: plan.rewards } : {}),
    providers: plan.providers,
    ...(plan.cuda !== undefined ? { cuda: plan.cuda } : {}),
    // Embeddings travel with the scores only when selection needs them: default runs pay nothing.
    ...(needsScoreEmbeddings(plan) ? { scoreEmbeddings: true } : {}),
  };
}

/** Whether the plan's search reads embeddings from the scores (EvoSearch with fitness sharing). */
export function needsScoreEmbeddings(plan: RunPlan): boolean {
  return plan.method === 'evosearch' && plan.evosearch.selection === 'sharing';
}
