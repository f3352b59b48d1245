/**
 * The plain HTTP endpoint of `--metrics-listen`: GET /metrics (Prometheus text format, this server's
 * registry), GET /livez (200 while the event loop responds) and GET /readyz (200 while ready, 503
 * with the reasons otherwise). It is for scrapers and probers on a trusted network: it shows counts
 * and states, nothing secret, and takes nothing in. So any other path is 404, any other method 405, a
 * request body is never read (the connection is closed after the answer instead), and requests are
 * held to small headers and short timeouts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { FailureError } from '../errors/evosearch-error.js';
import type { ProcessHealth } from './process-health.js';

const LIMITS = { maxHeaderSize: 8 * 1024, headersTimeout: 5_000, requestTimeout: 10_000, keepAliveTimeout: 5_000 };
/** Scrapers and probers: a handful at a time. */
const MAX_CONNECTIONS = 64;

export class MetricsEndpoint {
  private constructor(
    private readonly server: Server,
    /** host:port it listens on (port 0 resolved). */
    readonly address: string,
  ) {}

  /** Listens on `host`:`port` (0: any free port). A FailureError (io) when it cannot. */
  static async start(host: string, port: number, registry: Registry, health: ProcessHealth): Promise<MetricsEndpoint> {
    const server = createServer(LIMITS, (request, response) => void answer(request, response, registry, health));
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(new FailureError('io', `cannot serve metrics on ${host}:${port}: ${error.message}`, { cause: error })));
      server.listen({ host, port, exclusive: true }, resolve);
    });
    const bound = server.address() as AddressInfo;
    return new MetricsEndpoint(server, `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

async function answer(request: IncomingMessage, response: ServerResponse, registry: Registry, health: ProcessHealth): Promise<void> {
  // A body is never read: the connection ends after the answer, and the body with it.
  if (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0' || request.headers['transfer-encoding'] !== undefined) response.shouldKeepAlive = false;
  const path = (request.url ?? '').split('?', 1)[0];
  const head = request.method === 'HEAD';
  const send = (status: number, body: string, contentType = 'text/plain; charset=utf-8', extra: Record<string, string> = {}) => {
    response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...extra });
    response.end(head ? undefined : body);
  };
  if (path !== '/metrics' && path !== '/livez' && path !== '/readyz') return send(404, 'not found: this endpoint serves GET /metrics, /livez and /readyz\n');
  if (request.method !== 'GET' && !head) return send(405, `method ${request.method} not allowed: GET or HEAD\n`, undefined, { allow: 'GET, HEAD' });
  const status = health.status();
  if (path === '/livez') return status.live ? send(200, 'live\n') : send(503, `not live: ${status.reasons.filter((r) => r.startsWith('liveness:')).join('; ')}\n`);
  if (path === '/readyz') return status.ready ? send(200, 'ready\n') : send(503, `not ready: ${status.reasons.join('; ')}\n`);
  try {
    send(200, await registry.metrics(), registry.contentType);
  } catch (error) {
    send(500, `metrics not collected: ${(error as Error).message}\n`);
  }
}
