/**
 * Who sent a request to the live view, by the same rules as the coordinator's gRPC API:
 *
 *  1. a client certificate the TLS handshake verified against the cluster's CA (the HTTPS server asks
 *     for one but lets a browser without one in: only `socket.authorized === true` counts, so a
 *     certificate of another CA, or a self-signed one, is no identity at all), its CN the name and its
 *     OU the role (security/peer-roles.ts);
 *  2. else `Authorization: Bearer <token>`: a token of the tokens file (its entry's name and role), or
 *     the process's own loopback token (this machine's users, as plaintext gRPC on loopback).
 *
 * No cookies: a request carries its credentials itself, so another site cannot make a browser send
 * them (no CSRF). A certificate of a role that may not use the coordinator's API (a worker's, a
 * coordinator's) is refused, as PERMISSION_DENIED is there.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { identityOfSubject } from '../security/peer-roles.js';
import { VIEW_ROLES, type Principal, type ViewRole } from './principal.js';
import { tokenHash, type TokenBook } from './token-file.js';

export interface Credentials {
  /** The coordinator's --view-tokens file, if given. */
  readonly tokens?: TokenBook;
  /** The process's own loopback token (`evosearch view`; a coordinator under --insecure), if any. */
  readonly localToken?: string;
}

export type Authentication = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly status: 401 | 403; readonly error: string };

const BEARER = /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/;

export function authenticate(request: IncomingMessage, credentials: Credentials): Authentication {
  const socket = request.socket as Partial<TLSSocket>;
  if (socket.encrypted === true && socket.authorized === true && typeof socket.getPeerCertificate === 'function') {
    const certificate = socket.getPeerCertificate();
    const identity = certificate?.subject !== undefined ? identityOfSubject(certificate.subject as unknown as Record<string, string>) : 'no certificate';
    if (typeof identity !== 'string') {
      if (!(VIEW_ROLES as readonly string[]).includes(identity.role)) return { ok: false, status: 403, error: `the live view serves client and admin peers; this certificate is ${identity.role} '${identity.name}'` };
      return { ok: true, principal: { kind: 'peer', name: identity.name, role: identity.role as ViewRole, via: 'certificate' } };
    }
  }
  const header = request.headers.authorization;
  const bearer = typeof header === 'string' ? BEARER.exec(header.trim()) : null;
  if (bearer === null) return { ok: false, status: 401, error: 'no credentials: send a client certificate of the cluster, or Authorization: Bearer <token> (open the URL `evosearch token` printed)' };
  const token = bearer[1]!;
  if (credentials.localToken !== undefined && timingSafeEqual(tokenHash(token), tokenHash(credentials.localToken))) return { ok: true, principal: { kind: 'local' } };
  const entry = credentials.tokens?.verify(token) ?? null;
  if (entry !== null) return { ok: true, principal: { kind: 'peer', name: entry.name, role: entry.role, via: 'token' } };
  return { ok: false, status: 401, error: 'this token is not valid here' };
}
