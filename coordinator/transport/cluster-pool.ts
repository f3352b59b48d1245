/**
 * A run's workers found through NATS: the live registered workers that serve the run's model build,
 * connected over gRPC. Stale entries are swept (and announced lost) first.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { TransportSecurity } from '../../proto/transport-security.js';
import { GrpcWorkerPool } from './grpc-pool.js';
import type { WorkerSetup } from '../../proto/worker-setup.js';
import { liveWorkers, sweepStaleWorkers } from '../../cluster/worker-registry.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

export class NoWorkersError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'NoWorkersError';
}

export async function clusterWorkerPool(nc: NatsConnection, url: string, setup: WorkerSetup, runId: string, build: string, transport?: TransportSecurity): Promise<GrpcWorkerPool> {
  await sweepStaleWorkers(nc);
  const live = await liveWorkers(nc);
  const serving = live.filter((w) => w.build === build);
  if (serving.length === 0) {
    const others = live.map((w) => `${w.address} (${w.model}, ${w.build.slice(0, 19)}…)`).join(', ');
    throw new NoWorkersError(`no live worker registered at ${url} serves ${setup.model} build ${build}${live.length > 0 ? `; live workers: ${others}` : '; none is registered (start some with `evosearch worker --nats ' + url + ' --model ...`)'}`);
  }
  return GrpcWorkerPool.connect(serving.map((w) => w.address), setup, { runId, expectedBuild: build, ...(transport !== undefined ? { transport } : {}) });
}

/**
 * Adds to `pool` the live workers of `build` that registered since it was made (called between
 * rounds). A worker that cannot be set up is skipped and reported through `onSkip`; the run goes on.
 */
export async function joinNewWorkers(nc: NatsConnection, pool: GrpcWorkerPool, build: string, onSkip: (address: string, error: Error) => void = () => undefined): Promise<string[]> {
  const known = new Set(pool.addresses);
  const added: string[] = [];
  for (const worker of await liveWorkers(nc)) {
    if (worker.build !== build || known.has(worker.address)) continue;
    try {
      await pool.add(worker.address);
      added.push(worker.address);
    } catch (error) {
      onSkip(worker.address, error as Error);
    }
  }
  return added;
}
