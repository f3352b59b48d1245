/**
 * Why a gRPC call found no server: grpc-js says only "No connection established" (or "Failed to
 * connect") whether the address is dead or the TLS handshake failed, so after such a failure this
 * dials the address again by hand and watches where it stops. It opens a TCP connection; under mTLS
 * it shakes hands with this process's certificate, then sends HTTP/2's preface; a server that took
 * the certificate answers with its SETTINGS frame, one that did not sends an alert or closes.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { identityOfSubject } from '../security/peer-roles.js';
import { hostOf, type TransportSecurity } from './transport-security.js';

export type Diagnosis =
  /** No TCP connection: nothing listens there, or the way is closed. */
  | { readonly kind: 'unreachable'; readonly detail: string }
  /** A connection, but no secured session: one side refused the other's certificate, or one side does not speak TLS. */
  | { readonly kind: 'tls'; readonly detail: string }
  /** The server answered HTTP/2 as it should: the failure was somewhere else. */
  | { readonly kind: 'answers'; readonly detail: string };

/** HTTP/2's connection preface and an empty SETTINGS frame: what a gRPC client sends first. */
const PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
/** Byte 3 of an HTTP/2 frame header is its type; 4 is SETTINGS, the server's first frame. */
const isSettingsFrame = (data: Buffer) => data.length >= 9 && data[3] === 4;
/** Errors of the TCP connection itself, before any byte of TLS. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'ETIMEDOUT', 'EADDRNOTAVAIL']);

export function diagnoseConnection(address: string, transport: TransportSecurity, timeoutMs: number): Promise<Diagnosis> {
  const host = hostOf(address);
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  return new Promise<Diagnosis>((resolve) => {
    let tcp = false;
    let secured = false;
    let socket: Socket;
    const finish = (diagnosis: Diagnosis) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(diagnosis);
    };
    const timer = setTimeout(() => finish(tcp ? { kind: secured || transport.kind === 'plaintext-loopback' ? 'unreachable' : 'tls', detail: `connected, but no ${secured || transport.kind === 'plaintext-loopback' ? 'HTTP/2 answer' : 'TLS handshake'} within ${timeoutMs} ms` } : { kind: 'unreachable', detail: `no connection within ${timeoutMs} ms` }), timeoutMs);
    if (transport.kind === 'mtls') {
      const { ca, cert, key } = transport.identity;
      socket = tlsConnect({ host, port, ca, cert, key, ALPNProtocols: ['h2'], servername: 'evosearch-cluster-peer', checkServerIdentity: (_host: string, peer: PeerCertificate) => {
        const identity = identityOfSubject(peer.subject as unknown as Record<string, string>);
        return typeof identity === 'string' ? new Error(`the server's certificate names no cluster peer: ${identity}`) : undefined;
      } });
      socket.once('secureConnect', () => {
        secured = true;
        socket.write(PREFACE);
      });
    } else {
      socket = tcpConnect({ host, port });
    }
    socket.once('connect', () => {
      tcp = true;
      if (transport.kind === 'plaintext-loopback') socket.write(PREFACE);
    });
    socket.once('data', (data: Buffer) => {
      if (isSettingsFrame(data)) return finish({ kind: 'answers', detail: 'it answers HTTP/2' });
      // 0x15: a TLS alert record, what a TLS server sends a plaintext client.
      finish(transport.kind === 'plaintext-loopback' && data[0] === 0x15 ? { kind: 'tls', detail: 'the server speaks TLS, this side plaintext (--insecure): give the cluster\'s certificates (--tls-ca, --tls-cert, --tls-key)' } : { kind: 'answers', detail: 'it answers, but not as an HTTP/2 server' });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (!tcp && NETWORK_ERRORS.has(error.code ?? '')) return finish({ kind: 'unreachable', detail: error.message });
      if (!tcp) return finish({ kind: 'unreachable', detail: error.message });
      if (!secured && transport.kind === 'mtls') {
        // Node's codes for a certificate it does not trust: SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED, ...
        if (/CERT|SIGNATURE|ISSUER/.test(error.code ?? '')) return finish({ kind: 'tls', detail: `this side does not trust the server's certificate (is it signed by the CA of --tls-ca?): ${oneLine(error.message)}` });
        return finish({ kind: 'tls', detail: `the TLS handshake failed: ${oneLine(error.message)}` });
      }
      finish({ kind: 'tls', detail: `the server refused this process's certificate: ${oneLine(error.message)}` });
    });
    socket.once('close', () => {
      if (!tcp) return finish({ kind: 'unreachable', detail: 'the connection closed before it was made' });
      if (transport.kind === 'plaintext-loopback') return finish({ kind: 'tls', detail: 'the server closed a plaintext connection without an answer (it serves TLS?): give the cluster\'s certificates (--tls-ca, --tls-cert, --tls-key)' });
      if (!secured) return finish({ kind: 'tls', detail: 'the server closed the connection during the TLS handshake (it serves plaintext? then --insecure, on loopback)' });
      finish({ kind: 'tls', detail: 'the server closed the connection after the handshake: it does not take this process\'s certificate (one of another CA?)' });
    });
  });
}

/** OpenSSL's messages run over lines and name its source files: keep the words. */
function oneLine(message: string): string {
  const alert = /alert ([a-z ]+?)(?::|$)/i.exec(message);
  if (alert !== null && /SSL routines/.test(message)) return `TLS alert: ${alert[1]!.trim()}`;
  return message.replace(/\s+/g, ' ').trim();
}
