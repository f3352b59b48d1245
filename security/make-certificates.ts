/**
 * Certificates for a small cluster: one CA, and a certificate per peer with its name and role
 * (security/peer-roles.ts), each usable for both ends of a TLS connection (a worker serves and also
 * calls reward workers). node-forge writes the certificates (Node can read X.509 but not make it). Kept in PEM files: ca.crt and ca.key, and <name>.crt and
 * <name>.key per peer.
 */
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import type { PeerRole } from './peer-roles.js';

export interface IssuedPair {
  readonly certPem: string;
  readonly keyPem: string;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * node-forge signs with RSA only, so the CA's key is RSA (3072 bits); peers' keys are RSA 2048 too,
 * made by Node's crypto (fast), handed to forge as PEM.
 */
function rsaKeys(bits: number): { publicKey: forge.pki.rsa.PublicKey; privateKey: forge.pki.rsa.PrivateKey; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), keyPem };
}

function serial(): string {
  // Positive, 16 bytes: the high bit cleared so DER does not read it as negative.
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/** An unsigned certificate for `keys`, valid from five minutes ago (clocks differ) for `days`. */
function newCertificate(keys: { publicKey: forge.pki.rsa.PublicKey }, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + days * DAY_MS);
  return cert;
}

export function makeCertificateAuthority(name: string, days: number): IssuedPair {
  const keys = rsaKeys(3072);
  const cert = newCertificate(keys, days);
  const subject = [{ name: 'commonName', value: name }, { name: 'organizationName', value: 'evosearch cluster' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.keyPem };
}

/**
 * A peer's certificate, signed by the CA: CN its name, OU its role, for TLS servers and clients alike.
 * `hosts` become subject alternative names (DNS names or IP addresses) for tools that check them; the
 * cluster itself checks the CA and the role, not the address (security/peer-roles.ts).
 */
export function issueCertificate(ca: IssuedPair, peer: { readonly name: string; readonly role: PeerRole; readonly hosts?: readonly string[] }, days: number): IssuedPair {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(createPrivateKey(ca.keyPem).export({ type: 'pkcs1', format: 'pem' }).toString());
  const keys = rsaKeys(2048);
  const cert = newCertificate(keys, days);
  cert.setSubject([{ name: 'commonName', value: peer.name }, { name: 'organizationalUnitName', value: peer.role }, { name: 'organizationName', value: 'evosearch cluster' }]);
  cert.setIssuer(caCert.subject.attributes);
  const hosts = peer.hosts ?? ['localhost', '127.0.0.1'];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: hosts.map((h) => (/^[\d.]+$|:/.test(h) ? { type: 7, ip: h } : { type: 2, value: h })) },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.keyPem };
}
