/**
 * A denoising-only worker's rewards: its decoded samples go straight to the run's reward workers (gRPC,
 * worker to worker; the coordinator never sees them), batch by batch in turn, and the scores come back.
 */
import type * as grpc from '@grpc/grpc-js';
import { executeOverGrpc, withIdempotentRetry, workerClient, type ExecuteFailure } from '../proto/worker-client.js';
import type { TransportSecurity } from '../proto/transport-security.js';
import type { RewardScorer, SampleScore } from './reward-scorer.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** A reward worker failed to score a batch. */
export class RemoteScoringError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'RemoteScoringError';
}

export class RemoteRewardScorer implements RewardScorer {
  private readonly clients: { readonly address: string; readonly client: grpc.Client }[];
  private next = 0;
  /** Reward workers found gone: no batch is sent to them again. */
  private readonly lost = new Set<string>();

  constructor(addresses: readonly string[], private readonly runId: string, readonly guidanceName: string, transport: TransportSecurity, private readonly deadlineMs = 10 * 60_000) {
    if (addresses.length === 0) throw new RangeError('remote scoring needs at least one reward worker');
    // The project's keepalive (proto/grpc-limits.ts): a reward worker that froze is skipped within
    // seconds, not at the deadline.
    this.clients = addresses.map((address) => ({ address, client: workerClient(address, transport) }));
  }

  /**
   * Scores a batch on the next reward worker in turn. A reward worker that is gone (after the retries
   * of an idempotent call) is skipped from then on and the batch goes to the next one: the scores do
   * not depend on which worker gives them (same model build). Only when every reward worker is gone,
   * or one answers with an error, does scoring fail.
   */
  async score(samples: Float32Array, count: number): Promise<SampleScore[]> {
    const commands = [{ kind: 'score', samples, count }] as const;
    const failures: string[] = [];
    for (let attempt = 0; attempt < this.clients.length; attempt++) {
      const target = this.clients[this.next++ % this.clients.length]!;
      if (this.lost.has(target.address)) continue;
      let results;
      try {
        results = await withIdempotentRetry(commands, () => executeOverGrpc(target.client, this.runId, commands, this.deadlineMs));
      } catch (error) {
        const failure = error as ExecuteFailure;
        if (!failure.lost) throw new RemoteScoringError(`reward worker ${target.address}: ${failure.detail}`, { cause: failure.cause });
        this.lost.add(target.address);
        failures.push(`${target.address}: ${failure.detail}`);
        continue;
      }
      const scores = results[0]!.scores;
      if (scores.length !== count) throw new RemoteScoringError(`reward worker ${target.address} returned ${scores.length} scores for ${count} samples`);
      // The embeddings come back when the run asked the reward workers for them (their setup's scoreEmbeddings).
      return scores.map((s) => ({ reward: s.reward, ...(s.metrics !== undefined ? { metrics: s.metrics } : {}), ...(s.embedding !== undefined ? { embedding: s.embedding } : {}) }));
    }
    throw new RemoteScoringError(`every reward worker of the run is gone (${[...this.lost].join(', ')})${failures.length > 0 ? `: ${failures.join('; ')}` : ''}`);
  }

  close(): void {
    for (const { client } of this.clients) client.close();
  }
}
