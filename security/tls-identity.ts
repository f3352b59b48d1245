/**
 * This process's side of mutual TLS: the cluster's CA, and its own certificate and key, read from
 * PEM files and checked before anything listens or dials: the certificate must be the CA's, the key
 * its key, and its subject a peer identity (security/peer-roles.ts). Every problem names the file.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import { identityOfCertificate, type PeerIdentity } from './peer-roles.js';

export class TlsIdentityError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'TlsIdentityError';
  constructor(readonly file: string, readonly problem: string, options?: { cause?: unknown }) {
    super(`${file}: ${problem}`, options);
  }
}

export interface TlsIdentity extends PeerIdentity {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new TlsIdentityError(file, `cannot read the ${what} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
}

export function loadTlsIdentity(files: TlsFiles): TlsIdentity {
  const ca = read(files.ca, "cluster's CA certificate");
  const cert = read(files.cert, 'certificate');
  const key = read(files.key, 'private key');
  let caCert: X509Certificate;
  let own: X509Certificate;
  try {
    caCert = new X509Certificate(ca);
  } catch (error) {
    throw new TlsIdentityError(files.ca, 'is not a PEM certificate', { cause: error });
  }
  try {
    own = new X509Certificate(cert);
  } catch (error) {
    throw new TlsIdentityError(files.cert, 'is not a PEM certificate', { cause: error });
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new TlsIdentityError(files.key, 'is not a PEM private key', { cause: error });
  }
  if (!own.verify(caCert.publicKey)) throw new TlsIdentityError(files.cert, `was not signed by the CA in ${files.ca} (issuer ${own.issuer.replace(/\n/g, ', ')}); use the certificates one \`evosearch certs\` made together`);
  if (!own.checkPrivateKey(privateKey)) throw new TlsIdentityError(files.key, `is not the key of ${files.cert}`);
  // A public key that Node cannot derive would fail the handshake later with an opaque error.
  createPublicKey(privateKey);
  if (Date.parse(own.validTo) < Date.now()) throw new TlsIdentityError(files.cert, `expired on ${own.validTo}; make a new one with \`evosearch certs\``);
  const identity = identityOfCertificate(cert);
  if (typeof identity === 'string') throw new TlsIdentityError(files.cert, `is not a cluster peer's certificate: ${identity}`);
  return { ...identity, ca, cert, key };
}
