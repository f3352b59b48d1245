/**
 * How the live view answers: every response carries the same security headers (the page and its
 * scripts come from this process only; nothing is sniffed, framed or referred), and errors are a
 * short JSON object `{ "error": "..." }` with their status.
 */
import type { ServerResponse } from 'node:http';

/**
 * Scripts, styles, fetches: this process only. Images also as blob: URLs (the page fetches each
 * thumbnail with its Authorization header and shows the bytes it got). No inline script or style.
 */
export const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

export function securityHeaders(response: ServerResponse): void {
  response.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  response.setHeader('X-Content-Type-Options', 'nosniff');
  response.setHeader('Referrer-Policy', 'no-referrer');
  response.setHeader('X-Frame-Options', 'DENY');
  response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  response.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}

export function replyJson(response: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text), ...extra });
  response.end(text);
}

export function replyError(response: ServerResponse, status: number, error: string, extra: Record<string, string> = {}): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  replyJson(response, status, { error }, extra);
}
