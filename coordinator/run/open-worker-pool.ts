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
 * gRPC workers are reached (default plaintext, loopback only); `warn` is told the cluster's entries
 * and workers that were passed over.
 */
export async function openWorkerPool(plan: RunPlan, session: string, nc: NatsConnection | null, options: { readonly transport?: TransportSecurity; readonly warn?: (warning: string) => void } = {}): Promise<WorkerPool> {
  const setup = workerSetupFor(plan);
  const transport = options.transport !== undefined ? { transport: options.transport } : {};
  if (nc !== null) return clusterWorkerPool(nc, plan.cluster!, setup, session, await modelBuild(plan.model), { ...(options.warn !== undefined ? { warn: options.warn } : {}), ...transport });
  if (plan.workersAt !== undefined) return GrpcWorkerPool.connect(plan.workersAt, setup, { runId: session, expectedBuild: await modelBuild(plan.model), ...transport });
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
