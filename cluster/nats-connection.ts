/**
 * The NATS connection every cluster process keeps: it never stops reconnecting (the client's default
 * gives up after 10 attempts, which a long-running worker or coordinator must not). It proves itself
 * as nats-access.ts says (credentials in the URL count too), and no message it makes shows a secret.
 */
import { AuthorizationError, connect, type NatsConnection } from '@nats-io/transport-node';
import { succeedsWithin } from '../async/timeouts-and-turns.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import { describeNatsAccess, layerNatsAccess, natsConnectOptions, processNatsAccess, type NatsAccess } from './nats-access.js';
import { splitNatsUrl } from './nats-url.js';

export class NatsUnavailableError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'NatsUnavailableError';
  /** The URL tried, without its credentials. */
  readonly url: string;
  /** `as` says who this process tried to be (no secret in it). */
  constructor(url: string, options?: { cause?: unknown; as?: string }) {
    const shown = splitNatsUrl(url).url;
    const cause = options?.cause as Error | undefined;
    super(
      cause instanceof AuthorizationError
        ? `NATS at ${shown} refused this process (${options?.as ?? 'no credentials'}): ${cause.message}; give the cluster's credentials (--nats-user and --nats-password, --nats-token or --nats-creds, or their EVOSEARCH_NATS_* variables: docs/cluster-security.md)`
        : `cannot reach NATS at ${shown}: ${cause?.message ?? 'no answer'} (start one with \`nats-server -js\`, and give its URL)`,
      options,
    );
    this.url = shown;
  }
}

/**
 * Connects to `url` as `access` says (default: the process's, nats-access.ts); a user and password or
 * a token in the URL itself are used too, unless `access` names who to be.
 */
export async function connectNats(url: string, name: string, access: NatsAccess = processNatsAccess()): Promise<NatsConnection> {
  const { url: servers, credentials } = splitNatsUrl(url);
  const effective = layerNatsAccess(credentials, access);
  const options = natsConnectOptions(effective, servers);
  try {
    return await connect({ servers: servers.split(','), name, maxReconnectAttempts: -1, reconnectTimeWait: 1000, timeout: 5000, ...options });
  } catch (error) {
    throw new NatsUnavailableError(servers, { cause: error, as: describeNatsAccess(effective) });
  }
}

/**
 * Flushes and closes a connection, giving up on the flush after `ms` (NATS may be down: a run or a
 * worker must not hang on its way out because of it).
 */
export async function closeNats(nc: NatsConnection, ms = 2000): Promise<void> {
  if (!(await succeedsWithin(nc.drain(), ms))) await nc.close().catch(() => undefined);
}
