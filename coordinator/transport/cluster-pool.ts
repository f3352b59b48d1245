/**
 * A run's workers found through NATS: the live registered workers that serve the run's model build,
 * connected over gRPC. Stale entries are swept (and announced lost) first.
 *
 * A registry entry is a claim, not a worker: an entry that is not a Member is passed over (the
 * registry says why), and a worker that cannot be reached, refuses at its Hello or fails its setup is
 * skipped with a warning naming its key and address, and the run goes on with the others. It fails
 * only when none is usable, with the reason each was skipped.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { TransportSecurity } from '../../proto/transport-security.js';
import type { WireMeter } from '../../metrics/wire-meter.js';
import { GrpcWorkerPool, WorkerRefusedError } from './grpc-pool.js';
import type { WorkerSetup } from '../../proto/worker-setup.js';
import { describeStatus, unaryOverGrpc, workerClient } from '../../proto/worker-client.js';
import { WORKER_PROTOCOL_VERSION, workerService } from '../../proto/worker-service.js';
import { meteredMethod } from '../../proto/metered-service.js';
import { describeSkippedEntry, liveMembers, sweepStaleWorkers, WORKERS_BUCKET, type SkippedEntry, type StoredMember } from '../../cluster/worker-registry.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

export class NoWorkersError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'NoWorkersError';
}

/** How long a registered worker has to answer its Hello: an address that answers nothing must not hold a run up. */
export const REACH_DEADLINE_MS = 5000;

export interface ClusterPoolOptions {
  /** Told each entry and worker passed over, as it is passed over (the run's log). */
  readonly warn?: (warning: string) => void;
  /** How the workers are reached (default plaintext, loopback only); under mTLS each must show a worker certificate. */
  readonly transport?: TransportSecurity;
  /** Told the bytes of every message to and from the workers. */
  readonly wire?: WireMeter;
}

/** The cluster's usable workers of `build`, set up for the run. */
export async function clusterWorkerPool(nc: NatsConnection, url: string, setup: WorkerSetup, runId: string, build: string, options: ClusterPoolOptions = {}): Promise<GrpcWorkerPool> {
  const warn = options.warn ?? (() => undefined);
  const skipped: string[] = [];
  const skip = (warning: string) => {
    if (skipped.includes(warning)) return;
    skipped.push(warning);
    warn(warning);
  };
  const passOver = (entry: SkippedEntry) => skip(`passed over ${describeSkippedEntry(entry)}`);
  try {
    await sweepStaleWorkers(nc, { onSkip: passOver });
  } catch (error) {
    // A client may not be allowed to delete entries (docs/cluster-security.md); stale ones are not listed anyway.
    warn(`stale entries of ${WORKERS_BUCKET} not swept (${(error as Error).message}); they are passed over all the same`);
  }
  const live = await liveMembers(nc, { onSkip: passOver });
  const serving = live.filter((w) => w.member.build === build);
  if (serving.length === 0) {
    const others = live.map(({ member: w }) => `${w.address} (${w.model}, ${w.build.slice(0, 19)}…)`).join(', ');
    throw new NoWorkersError(`no live worker registered at ${url} serves ${setup.model} build ${build}${live.length > 0 ? `; live workers: ${others}` : '; none is registered (start some with `evosearch worker --nats ' + url + ' --model ...`)'}${skipped.length > 0 ? `; ${skipped.join('; ')}` : ''}`);
  }
  const refusals = await Promise.all(serving.map((w) => reach(w.member.address, build, options.transport, options.wire)));
  let candidates = serving.filter((w, i) => {
    if (refusals[i] !== null) skip(skippedWorker(w, refusals[i]!));
    return refusals[i] === null;
  });
  // A worker that answered its Hello can still refuse the run (its setup fails): it is dropped and the
  // others connected again (a setup the others already have is kept: setups are per run id).
  while (candidates.length > 0) {
    try {
      return await GrpcWorkerPool.connect(candidates.map((w) => w.member.address), setup, { runId, expectedBuild: build, ...(options.transport !== undefined ? { transport: options.transport } : {}), ...(options.wire !== undefined ? { wire: options.wire } : {}) });
    } catch (error) {
      const refused = error instanceof WorkerRefusedError ? candidates.find((w) => w.member.address === error.address) : undefined;
      if (refused === undefined) throw error;
      skip(skippedWorker(refused, (error as Error).message));
      candidates = candidates.filter((w) => w !== refused);
    }
  }
  throw new NoWorkersError(`no usable worker at ${url} serves ${setup.model} build ${build}: ${skipped.join('; ')}`);
}

/**
 * Adds to `pool` the live workers of `build` that registered since it was made (called between
 * rounds). A worker that cannot be reached or set up, or an entry that is not a Member, is skipped and
 * reported through `onSkip`; the run goes on.
 */
export async function joinNewWorkers(nc: NatsConnection, pool: GrpcWorkerPool, build: string, onSkip: (warning: string) => void = () => undefined): Promise<string[]> {
  const known = new Set(pool.addresses);
  const added: string[] = [];
  for (const worker of await liveMembers(nc, { onSkip: (entry) => onSkip(`passed over ${describeSkippedEntry(entry)}`) })) {
    const { address } = worker.member;
    if (worker.member.build !== build || known.has(address)) continue;
    const refusal = await reach(address, build, pool.transport, pool.wire);
    if (refusal !== null) {
      onSkip(skippedWorker(worker, refusal));
      continue;
    }
    try {
      await pool.add(address);
      added.push(address);
    } catch (error) {
      onSkip(skippedWorker(worker, (error as Error).message));
    }
  }
  return added;
}

const skippedWorker = (worker: StoredMember, why: string) => `skipped worker ${worker.key} at ${worker.member.address} (${WORKERS_BUCKET}): ${why}`;

/**
 * The connection step: a registered worker is dialled and asked its Hello (protocol version, model
 * build) within REACH_DEADLINE_MS, before the run is sent to it. Null when it answers as a worker of
 * `build`, else why not. Under mTLS the handshake is where the entry's claim is checked: whoever
 * answers at the address must show a worker certificate of the cluster's CA, or it is skipped.
 */
async function reach(address: string, build: string, transport: TransportSecurity | undefined, wire: WireMeter | undefined): Promise<string | null> {
  const client = workerClient(address, transport);
  try {
    await unaryOverGrpc(client, meteredMethod(workerService.hello, wire), { protocolVersion: WORKER_PROTOCOL_VERSION, expectedModelBuild: build }, REACH_DEADLINE_MS);
    return null;
  } catch (error) {
    return `cannot be reached or refused at connection (${describeStatus(error)})`;
  } finally {
    client.close();
  }
}
