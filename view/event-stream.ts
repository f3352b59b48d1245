/**
 * `GET /api/runs/:id/events`: a run's events as NDJSON, read by the page with fetch and a
 * ReadableStream (EventSource cannot send an Authorization header). First every event so far (a page
 * opened mid-run catches up), then each as it comes, until the run's last; a heartbeat line every
 * `heartbeatMs` keeps proxies from cutting a quiet stream. Each line is one object:
 *
 *   {"type":"event","event":{"runId":..,"at":..,"event":"round","payload":{...}}}   the project's typed event
 *   {"type":"heartbeat","at":"<RFC 3339>"}
 *   {"type":"end","state":"finished"}                                                 the run had its last event
 *
 * Bounded: a reader that falls more than `maxBufferBytes` behind is cut off (it reconnects and catches
 * up again), and one principal may hold at most `maxPerPrincipal` streams at once (more: 429).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TypedRunEvent } from '../proto/coordinator-messages.js';
import { LAST_EVENT_KINDS } from '../proto/coordinator-messages.js';
import { replyError } from './http-replies.js';
import { principalKey, describePrincipal, type Principal } from './principal.js';
import type { ViewableRun } from './run-source.js';

export interface StreamLimits {
  readonly heartbeatMs: number;
  readonly maxBufferBytes: number;
  readonly maxPerPrincipal: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { heartbeatMs: 15_000, maxBufferBytes: 4 * 2 ** 20, maxPerPrincipal: 8 };

export class EventStreams {
  private readonly open = new Map<string, number>();
  private readonly responses = new Set<ServerResponse>();

  constructor(private readonly limits: StreamLimits) {}

  serve(request: IncomingMessage, response: ServerResponse, run: ViewableRun, principal: Principal): void {
    const key = principalKey(principal);
    const held = this.open.get(key) ?? 0;
    if (held >= this.limits.maxPerPrincipal) {
      replyError(response, 429, `${describePrincipal(principal)} has ${held} event streams open, the most one may; close a tab of the view`, { 'Retry-After': '5' });
      return;
    }
    this.open.set(key, held + 1);
    this.responses.add(response);
    response.writeHead(200, { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    if (request.method === 'HEAD') return void response.end();
    let closed = false;
    let following: { stop(): void } | null = null;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      following?.stop();
      this.responses.delete(response);
      const now = (this.open.get(key) ?? 1) - 1;
      if (now === 0) this.open.delete(key);
      else this.open.set(key, now);
    };
    const write = (line: unknown) => {
      if (closed) return;
      response.write(`${JSON.stringify(line)}\n`);
      // A reader that does not keep up is let go rather than buffered without end.
      if (response.writableLength > this.limits.maxBufferBytes) {
        close();
        response.destroy();
      }
    };
    const heartbeat = setInterval(() => write({ type: 'heartbeat', at: new Date().toISOString() }), this.limits.heartbeatMs);
    heartbeat.unref();
    response.on('close', close);
    const end = (event: TypedRunEvent | undefined) => {
      write({ type: 'end', state: event !== undefined && LAST_EVENT_KINDS.has(event.event) ? event.event : run.listing().state });
      close();
      response.end();
    };
    const onEvent = (event: TypedRunEvent) => {
      write({ type: 'event', event });
      if (LAST_EVENT_KINDS.has(event.event)) end(event);
    };
    const f = run.follow(onEvent);
    following = f;
    for (const event of f.past) write({ type: 'event', event });
    if (f.ended) end(f.past.at(-1));
    else if (closed) f.stop();
  }

  /** Ends every open stream (the server stops). */
  closeAll(): void {
    for (const response of this.responses) response.end();
  }
}
