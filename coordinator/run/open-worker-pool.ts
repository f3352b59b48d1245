import type { NatsConnection } from '@nats-io/transport-node';
import type { RunPlan } from '../../config/resolve-run-config.js';
import type { WorkerPool } from '../../proto/worker-pool.js';
import type { WorkerSetup } from '../../proto/worker-setup.js';
import type { TransportSecurity } from '../../proto/transport-security.js';
import { modelBuild } from '../../worker/model-build.js';
import { ThreadPool } from '../../worker/thread-pool.js';
import { clusterWorkerPool } from '../transport/cluster-pool.js';
import { GrpcWorkerPool } from '../transport/grpc-pool.js';

/**
 * A run's workers: the cluster's (found through `nc`, a `--cluster` run), the named gRPC workers
 * (`--workers-at`), or local threads. `session` is how the workers know the run; `transport`, how
 * gRPC workers are reached (default plaintext, loopback only).
 */
export async function openWorkerPool(plan: RunPlan, session: string, nc: NatsConnection | null, transport?: TransportSecurity): Promise<WorkerPool> {
  const setup = workerSetupFor(plan);
  if (nc !== null) return clusterWorkerPool(nc, plan.cluster!, setup, session, await modelBuild(plan.model), transport);
  if (plan.workersAt !== undefined) return GrpcWorkerPool.connect(plan.workersAt, setup, { runId: session, expectedBuild: await modelBuild(plan.model), ...(transport !== undefined ? { transport } : {}) });
  return ThreadPool.start(plan.workers, setup);
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
  };
}
