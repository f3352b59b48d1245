/**
 * The NATS connection every cluster process keeps: it never stops reconnecting (the client's default
 * gives up after 10 attempts, which a long-running worker or coordinator must not).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { succeedsWithin } from '../async/timeouts-and-turns.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

export class NatsUnavailableError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'NatsUnavailableError';
  constructor(readonly url: string, options?: { cause?: unknown }) {
    super(`cannot reach NATS at ${url}: ${(options?.cause as Error | undefined)?.message ?? 'no answer'} (start one with \`nats-server -js\`, and give its URL)`, options);
  }
}

export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 1000, timeout: 5000 });
  } catch (error) {
    throw new NatsUnavailableError(url, { cause: error });
  }
}

/**
 * Flushes and closes a connection, giving up on the flush after `ms` (NATS may be down: a run or a
 * worker must not hang on its way out because of it).
 */
export async function closeNats(nc: NatsConnection, ms = 2000): Promise<void> {
  if (!(await succeedsWithin(nc.drain(), ms))) await nc.close().catch(() => undefined);
}
