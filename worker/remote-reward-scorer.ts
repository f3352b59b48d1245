/**
 * A denoising-only worker's rewards: its decoded samples go straight to the run's reward workers (gRPC,
 * worker to worker; the coordinator never sees them), batch by batch in turn, and the scores come back.
 */
import * as grpc from '@grpc/grpc-js';
import { executeOverGrpc, withIdempotentRetry, type ExecuteFailure } from '../proto/worker-client.js';
import type { RewardScorer, SampleScore } from './reward-scorer.js';

/** A reward worker failed to score a batch. */
export class RemoteScoringError extends Error {
  override readonly name = 'RemoteScoringError';
}

export class RemoteRewardScorer implements RewardScorer {
  private readonly clients: { readonly address: string; readonly client: grpc.Client }[];
  private next = 0;

  constructor(addresses: readonly string[], private readonly runId: string, readonly guidanceName: string, private readonly deadlineMs = 10 * 60_000) {
    if (addresses.length === 0) throw new RangeError('remote scoring needs at least one reward worker');
    this.clients = addresses.map((address) => ({ address, client: new grpc.Client(address, grpc.credentials.createInsecure()) }));
  }

  async score(samples: Float32Array, count: number): Promise<SampleScore[]> {
    const target = this.clients[this.next++ % this.clients.length]!;
    let results;
    try {
      const commands = [{ kind: 'score', samples, count }] as const;
      results = await withIdempotentRetry(commands, () => executeOverGrpc(target.client, this.runId, commands, this.deadlineMs));
    } catch (error) {
      const failure = error as ExecuteFailure;
      throw new RemoteScoringError(`reward worker ${target.address}: ${failure.detail}`, { cause: failure.cause });
    }
    const scores = results[0]!.scores;
    if (scores.length !== count) throw new RemoteScoringError(`reward worker ${target.address} returned ${scores.length} scores for ${count} samples`);
    return scores.map((s) => (s.metrics !== undefined ? { reward: s.reward, metrics: s.metrics } : { reward: s.reward }));
  }

  close(): void {
    for (const { client } of this.clients) client.close();
  }
}
