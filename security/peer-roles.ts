/**
 * Who a peer of the cluster is, as its certificate says: the cluster's CA signed it, its subject's
 * common name (CN) names it, and its organizational unit (OU) is its role. The registry in NATS and the
 * address dialled are only hints; this is the identity every gRPC hop checks (proto/transport-security.ts).
 */
import { X509Certificate } from 'node:crypto';

/**
 * - coordinator: drives workers (the coordinator service, and a client running a search itself with
 *   --workers-at or --cluster);
 * - worker: serves a model (and calls the run's reward workers);
 * - client: submits runs to a coordinator and sees its own;
 * - admin: a client that sees, cancels and downloads every run.
 */
export const PEER_ROLES = ['coordinator', 'worker', 'client', 'admin'] as const;
export type PeerRole = (typeof PEER_ROLES)[number];

export interface PeerIdentity {
  readonly name: string;
  readonly role: PeerRole;
}

/** A subject line as Node prints it ("CN=w1\nOU=worker") or as tls gives it ({ CN, OU }). */
type Subject = string | Readonly<Record<string, string | readonly string[] | undefined>>;

function field(subject: Subject, key: string): string | undefined {
  if (typeof subject === 'string') {
    const line = subject.split('\n').find((l) => l.startsWith(`${key}=`));
    return line?.slice(key.length + 1);
  }
  const value = subject[key];
  return Array.isArray(value) ? (value as readonly string[])[0] : (value as string | undefined);
}

/** The identity a certificate's subject states, or why it states none. */
export function identityOfSubject(subject: Subject): PeerIdentity | string {
  const name = field(subject, 'CN');
  const role = field(subject, 'OU');
  if (name === undefined || name === '') return 'its subject has no common name (CN)';
  if (role === undefined || !(PEER_ROLES as readonly string[]).includes(role)) return `its organizational unit (OU) is ${role === undefined ? 'missing' : `'${role}'`}, not a role (${PEER_ROLES.join(', ')})`;
  return { name, role: role as PeerRole };
}

export function identityOfCertificate(pem: string | Buffer): PeerIdentity | string {
  return identityOfSubject(new X509Certificate(pem).subject);
}
