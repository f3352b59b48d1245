/**
 * The live view's HTTP server: the page (view/page/) and its JSON API over a RunSource.
 *
 *   GET  /                                        the page (no credentials needed: it holds no data)
 *   GET  /api/whoami                              who the caller is, and what this view serves
 *   GET  /api/runs                                the runs the caller may see
 *   GET  /api/runs/:id                            one run: its listing and whether it can be cancelled here
 *   GET  /api/runs/:id/events                     its events as NDJSON: all so far, then live (event-stream.ts)
 *   POST /api/runs/:id/cancel                     stops it between rounds (no body)
 *   GET  /api/runs/:id/download                   its folder as .tar.gz (once finished, as the Files call)
 *   GET  /api/runs/:id/thumbnails/:round/:c.png   a scored sample's thumbnail (thumbnail-png.ts)
 *
 * Every /api call needs credentials (authenticate.ts): 401 without, 403 for a peer of another role,
 * and a run the caller may not see is 404, as the gRPC API's NOT_FOUND. Under TLS it is HTTPS with
 * the process's certificate, asking browsers for a client certificate of the cluster's CA; plaintext
 * HTTP serves loopback addresses only, as the gRPC servers do. Request bodies are refused past 1 KiB
 * (no endpoint takes one), paths are judged before anything is looked up (request-route.ts).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { hostOf, isLoopback, TransportSecurityError } from '../proto/transport-security.js';
import type { TlsIdentity } from '../security/tls-identity.js';
import { authenticate, type Credentials } from './authenticate.js';
import { DEFAULT_STREAM_LIMITS, EventStreams, type StreamLimits } from './event-stream.js';
import { replyError, replyJson, securityHeaders } from './http-replies.js';
import { PageFiles } from './page-files.js';
import { describePrincipal, type Principal } from './principal.js';
import { route, type Route } from './request-route.js';
import { streamRunArchive } from './run-archive.js';
import type { RunSource } from './run-source.js';
import { ThumbnailCache, thumbnailPng } from './thumbnail-png.js';

/** Bytes of request body the view reads at most (no endpoint takes a body). */
export const MAX_BODY_BYTES = 1024;

export interface ViewLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

export interface ViewServerOptions {
  /** host:port (port 0: any free port). */
  readonly listen: string;
  readonly source: RunSource;
  /** The process's TLS identity: HTTPS with its certificate. Null: plaintext HTTP, loopback only. */
  readonly tls: TlsIdentity | null;
  readonly credentials: Credentials;
  readonly limits?: Partial<StreamLimits>;
  readonly logger?: ViewLogger;
}

export class ViewServer {
  private constructor(
    private readonly server: Server,
    private readonly streams: EventStreams,
    /** host:port it listens on. */
    readonly address: string,
    /** The page's address (without credentials). */
    readonly url: string,
  ) {}

  static async start(options: ViewServerOptions): Promise<ViewServer> {
    const { host, port } = checkViewListen(options.listen, options.tls !== null);
    const streams = new EventStreams({ ...DEFAULT_STREAM_LIMITS, ...options.limits });
    const handler = requestHandler(options, streams);
    const server: Server =
      options.tls === null
        ? createHttpServer(handler)
        : (createHttpsServer({ key: options.tls.key, cert: options.tls.cert, ca: options.tls.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler) as unknown as Server);
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = (server.address() as AddressInfo).port;
    const shown = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
    return new ViewServer(server, streams, `${host.includes(':') ? `[${host}]` : host}:${bound}`, `${options.tls === null ? 'http' : 'https'}://${shown}:${bound}/`);
  }

  async close(): Promise<void> {
    this.streams.closeAll();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
    });
  }
}

/**
 * The host and port of `listen`, or why the view may not serve there: plaintext HTTP (no TLS) only on a
 * loopback address, as the gRPC servers.
 */
export function checkViewListen(listen: string, tls: boolean): { readonly host: string; readonly port: number } {
  const at = listen.lastIndexOf(':');
  const host = hostOf(listen);
  const port = Number(listen.slice(at + 1));
  if (at < 0 || !/^\d+$/.test(listen.slice(at + 1)) || port > 65535) throw new TransportSecurityError(`the view's address '${listen}' is not host:port`);
  if (!tls && !isLoopback(host)) {
    throw new TransportSecurityError(`cannot serve the view in plaintext HTTP on ${listen}: plaintext is for loopback addresses only; listen on 127.0.0.1, or give the coordinator its certificates (--tls-ca, --tls-cert, --tls-key) to serve HTTPS`);
  }
  return { host, port };
}

function requestHandler(options: ViewServerOptions, streams: EventStreams) {
  const pages = new PageFiles();
  const thumbnails = new ThumbnailCache();
  const { source } = options;
  return (request: IncomingMessage, response: ServerResponse) => {
    securityHeaders(response);
    void bodyWithinLimit(request).then(async (within) => {
      if (!within) {
        response.setHeader('Connection', 'close');
        return replyError(response, 413, `a request body is at most ${MAX_BODY_BYTES} bytes here (no endpoint takes one)`);
      }
      const routing = route(request.method, request.url, (id) => source.isRunId(id));
      if (!routing.ok) return replyError(response, routing.status, routing.error, routing.status === 405 ? { Allow: 'GET, HEAD, POST' } : {});
      const r = routing.route;
      if (r.kind === 'page') {
        const file = pages.get(r.file);
        response.writeHead(200, { 'Content-Type': file.type, 'Content-Length': file.bytes.length, 'Cache-Control': 'no-cache' });
        return void response.end(file.bytes);
      }
      const auth = authenticate(request, options.credentials);
      if (!auth.ok) return replyError(response, auth.status, auth.error, auth.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="evosearch"' } : {});
      await serveApi(r, auth.principal, request, response);
    }).catch((error: Error) => {
      options.logger?.warn({ url: request.url, error: error.message }, 'view request failed');
      replyError(response, 500, 'the view failed to answer this request (see the log)');
    });
  };

  async function serveApi(r: Exclude<Route, { kind: 'page' }>, principal: Principal, request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (r.kind === 'whoami') return replyJson(response, 200, { principal: describePrincipal(principal), name: principal.kind === 'local' ? null : principal.name, role: principal.kind === 'local' ? 'local' : principal.role, title: source.title });
    if (r.kind === 'runs') return replyJson(response, 200, { runs: source.list(principal) });
    const run = source.find(r.runId, principal);
    if (run === undefined) return replyError(response, 404, `no run ${r.runId} here`);
    switch (r.kind) {
      case 'run':
        return replyJson(response, 200, { run: run.listing(), cancel: run.cancellable() });
      case 'events':
        return streams.serve(request, response, run, principal);
      case 'cancel': {
        const cancellable = run.cancellable();
        if (!cancellable.possible) return replyError(response, 409, cancellable.why);
        return replyJson(response, 200, { state: await run.cancel() });
      }
      case 'download': {
        const files = run.files();
        if ('refused' in files) return replyError(response, 409, files.refused);
        return streamRunArchive(response, r.runId, files.files, (error) => {
          options.logger?.warn({ runId: r.runId, error: error.message }, 'run folder not served');
          replyError(response, 409, `run ${r.runId}'s folder cannot be served: ${error.message}`);
        });
      }
      case 'thumbnail': {
        const png = await thumbnails.get(`${r.runId}/${r.round}/${r.candidate}`, async () => {
          const sample = await run.thumbnail(r.round, r.candidate);
          return sample === null ? null : thumbnailPng(sample);
        });
        if (png === null) return replyError(response, 404, `no thumbnail of candidate ${r.candidate} in round ${r.round}`);
        response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length, 'Cache-Control': 'private, max-age=86400, immutable' });
        return void response.end(png);
      }
    }
  }
}

/** Reads and drops a request's body, false once it passes MAX_BODY_BYTES. */
function bodyWithinLimit(request: IncomingMessage): Promise<boolean> {
  const declared = request.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) return Promise.resolve(false);
  if (declared === undefined && request.headers['transfer-encoding'] === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    let bytes = 0;
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_BODY_BYTES) {
        request.off('data', onData);
        request.pause();
        resolve(false);
      }
    };
    request.on('data', onData);
    request.once('end', () => resolve(bytes <= MAX_BODY_BYTES));
    request.once('error', () => resolve(false));
  });
}
