/**
 * Who is asking the live view: the same principals as the coordinator's gRPC API. A name and a role
 * from a client certificate of the cluster's CA (security/peer-roles.ts), or from a bearer token of
 * the coordinator's tokens file (view/token-file.ts) that was made for that name and role; or the
 * process's own loopback token (a coordinator under --insecure, `evosearch view`), which stands for
 * this machine's users as a plaintext gRPC caller on loopback does and sees every run.
 */
import type { PeerIdentity } from '../security/peer-roles.js';

/** The roles that may use the view, as they may use the coordinator's API. */
export const VIEW_ROLES = ['client', 'admin'] as const;
export type ViewRole = (typeof VIEW_ROLES)[number];

export type Principal =
  | { readonly kind: 'peer'; readonly name: string; readonly role: ViewRole; readonly via: 'certificate' | 'token' }
  /** The process's loopback token: this machine's users. */
  | { readonly kind: 'local' };

/** The identity the coordinator's authorization takes (null: a loopback caller, who sees every run). */
export function identityOf(principal: Principal): PeerIdentity | null {
  return principal.kind === 'local' ? null : { name: principal.name, role: principal.role };
}

/** A short name for logs, limits and the page ("alice (client, certificate)"). */
export function describePrincipal(principal: Principal): string {
  return principal.kind === 'local' ? 'this machine (loopback token)' : `${principal.name} (${principal.role}, ${principal.via})`;
}

/** The key concurrent-stream limits count under: one per name, whichever way it came. */
export function principalKey(principal: Principal): string {
  return principal.kind === 'local' ? '\u0000local' : `peer:${principal.name}`;
}
