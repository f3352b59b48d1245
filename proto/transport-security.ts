/**
 * How every gRPC hop is secured: mutual TLS from the cluster's CA (both ends show a certificate the CA
 * signed, and each checks the other's role: security/peer-roles.ts), or plaintext, which serves and
 * dials loopback addresses only. Servers build their credentials here, clients their channels, and
 * each call's handler asks who is calling.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import { identityOfSubject, type PeerIdentity, type PeerRole } from '../security/peer-roles.js';
import type { TlsIdentity } from '../security/tls-identity.js';

/** What grpc-js's server calls tell of their connection (its AuthContext, not exported by name). */
interface CallWithAuth {
  getAuthContext?: () => { readonly sslPeerCertificate?: PeerCertificate } | null;
}

export type TransportSecurity = { readonly kind: 'plaintext-loopback' } | { readonly kind: 'mtls'; readonly identity: TlsIdentity };

/** Plaintext, loopback only: the library's default, and the CLI's with --insecure. */
export const PLAINTEXT_LOOPBACK: TransportSecurity = { kind: 'plaintext-loopback' };

/** A listen or dial address plaintext may not use, or a peer whose certificate is not what the hop needs. */
export class TransportSecurityError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'TransportSecurityError';
}

const HOW_TO_SECURE = 'give the cluster\'s certificates with --tls-ca, --tls-cert and --tls-key (`evosearch certs` makes them)';

/** The host part of host:port ([::1]:50051 included). */
export function hostOf(address: string): string {
  const at = address.lastIndexOf(':');
  const host = at < 0 ? address : address.slice(0, at);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function serverCredentials(security: TransportSecurity, listen: string): grpc.ServerCredentials {
  if (security.kind === 'plaintext-loopback') {
    if (!isLoopback(hostOf(listen))) throw new TransportSecurityError(`cannot serve plaintext gRPC on ${listen}: plaintext is for loopback addresses only; listen on 127.0.0.1, or ${HOW_TO_SECURE}`);
    return grpc.ServerCredentials.createInsecure();
  }
  const { ca, cert, key } = security.identity;
  // true: a client without a certificate of this CA is refused in the handshake.
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], true);
}

/**
 * Credentials for dialling `target`, which must prove one of `expect` roles. The address is a hint
 * (from NATS, or typed): the certificate is the identity, so its host name is not what is checked.
 */
export function channelCredentials(security: TransportSecurity, target: string, expect: readonly PeerRole[]): grpc.ChannelCredentials {
  if (security.kind === 'plaintext-loopback') {
    if (!isLoopback(hostOf(target))) throw new TransportSecurityError(`cannot dial ${target} in plaintext: plaintext is for loopback addresses only; ${HOW_TO_SECURE}`);
    return grpc.credentials.createInsecure();
  }
  const { ca, cert, key } = security.identity;
  return grpc.credentials.createSsl(ca, key, cert, {
    checkServerIdentity: (_host: string, peer: PeerCertificate) => {
      const identity = identityOfSubject(peer.subject as unknown as Record<string, string>);
      if (typeof identity === 'string') return new Error(`${target} showed a certificate of the cluster's CA that names no peer: ${identity}`);
      if (!expect.includes(identity.role)) return new Error(`${target} is ${identity.role} '${identity.name}', not a ${expect.join(' or ')}: check the address`);
      return undefined;
    },
  });
}

/**
 * Channel options a secured channel needs: the name it asks the server for (TLS SNI). The address is
 * often an IP, which SNI may not carry (Node warns), and the identity checked is the certificate's
 * role, not a host name, so every channel asks for one fixed name.
 */
export function channelOptions(security: TransportSecurity): grpc.ChannelOptions {
  return security.kind === 'mtls' ? { 'grpc.ssl_target_name_override': 'evosearch-cluster-peer' } : {};
}

/** The peer a call comes from: its certificate's identity (mTLS), or null (plaintext on loopback). */
export function callerOf(call: CallWithAuth): PeerIdentity | null {
  const certificate = call.getAuthContext?.()?.sslPeerCertificate;
  if (certificate === undefined) return null;
  const identity = identityOfSubject(certificate.subject as unknown as Record<string, string>);
  return typeof identity === 'string' ? null : identity;
}

/**
 * Null when the caller may use this service; otherwise the PERMISSION_DENIED status to answer with.
 * Under mTLS the handshake has already refused certificates of another CA; here the role is checked.
 */
export function refusalUnlessRole(security: TransportSecurity, call: CallWithAuth, service: string, roles: readonly PeerRole[]): Partial<grpc.StatusObject> & { code: grpc.status; details: string } | null {
  if (security.kind === 'plaintext-loopback') return null;
  const caller = callerOf(call);
  if (caller !== null && roles.includes(caller.role)) return null;
  return {
    code: grpc.status.PERMISSION_DENIED,
    details: `this ${service} serves ${roles.join(' and ')} peers; the caller is ${caller === null ? 'not a cluster peer' : `${caller.role} '${caller.name}'`}`,
    metadata: new grpc.Metadata(),
  };
}
