/**
 * `evosearch certs`: a CA and a certificate per peer for a small cluster (security/make-certificates.ts),
 * written as PEM files into one folder: ca.crt and ca.key, then <name>.crt and <name>.key per peer.
 * A CA already in the folder is reused, so peers can be added later; an existing peer's files are never
 * overwritten. Keys are readable by their owner only. Give each machine ca.crt and its own pair (never
 * ca.key, which signs new peers).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { ConfigError } from '../config/resolve-run-config.js';
import { issueCertificate, makeCertificateAuthority, type IssuedPair } from '../security/make-certificates.js';
import { PEER_ROLES, type PeerRole } from '../security/peer-roles.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const collect = (value: string, previous: string[] = []) => [...previous, value];

export function buildCertsCommand(): Command {
  const command = new Command('certs').description("Make the cluster's CA (or reuse the one in --out) and a certificate for each named peer, for mutual TLS on every gRPC hop (--tls-ca, --tls-cert, --tls-key).");
  command.requiredOption('--out <dir>', 'the folder for ca.crt, ca.key and <name>.crt / <name>.key');
  for (const role of PEER_ROLES) command.option(`--${role} <name>`, `a ${role} certificate named <name> (repeatable)`, collect);
  command
    .option('--host <host>', 'a host name or IP address the certificates also name (repeatable; default localhost and 127.0.0.1; the cluster checks the CA and the role, not the host)', collect)
    .option('--days <n>', 'how long the certificates are valid', '365')
    .action((options: Partial<Record<PeerRole, string[]>> & { out: string; host?: string[]; days: string }) => {
      const days = Number(options.days);
      if (!(Number.isInteger(days) && days >= 1 && days <= 3650)) throw new ConfigError('--days', `'${options.days}' is not a whole number of days from 1 to 3650`, 'command-line flags');
      const peers = PEER_ROLES.flatMap((role) => (options[role] ?? []).map((name) => ({ name, role })));
      if (peers.length === 0) throw new ConfigError('--worker, --coordinator, --client, --admin', 'name at least one peer to make a certificate for', 'command-line flags');
      const seen = new Set<string>();
      for (const { name, role } of peers) {
        if (!NAME.test(name) || name === 'ca') throw new ConfigError(`--${role}`, `'${name}' is not a certificate name (letters, digits, '.', '_' and '-', at most 64, not 'ca')`, 'command-line flags');
        if (seen.has(name)) throw new ConfigError(`--${role}`, `'${name}' is named twice: each peer needs its own name`, 'command-line flags');
        seen.add(name);
      }
      const out = resolve(options.out);
      for (const { name, role } of peers) {
        for (const file of [`${name}.crt`, `${name}.key`]) {
          if (existsSync(join(out, file))) throw new ConfigError(`--${role}`, `${join(out, file)} exists: a certificate is never overwritten; choose another name, or delete that peer's files first`, 'command-line flags');
        }
      }
      mkdirSync(out, { recursive: true, mode: 0o700 });
      const hosts = options.host ?? ['localhost', '127.0.0.1'];
      const caFiles = { cert: join(out, 'ca.crt'), key: join(out, 'ca.key') };
      let ca: IssuedPair;
      if (existsSync(caFiles.cert) && existsSync(caFiles.key)) {
        ca = { certPem: readFileSync(caFiles.cert, 'utf8'), keyPem: readFileSync(caFiles.key, 'utf8') };
        process.stdout.write(`using the CA in ${caFiles.cert}\n`);
      } else if (existsSync(caFiles.cert) || existsSync(caFiles.key)) {
        throw new ConfigError('--out', `${out} holds only one of ca.crt and ca.key: restore the other, or choose an empty folder`, 'command-line flags');
      } else {
        ca = makeCertificateAuthority('evosearch cluster CA', days);
        writeFileSync(caFiles.key, ca.keyPem, { mode: 0o600, flag: 'wx' });
        writeFileSync(caFiles.cert, ca.certPem, { mode: 0o644, flag: 'wx' });
        process.stdout.write(`made a CA: ${caFiles.cert} (its key ${caFiles.key} signs new peers: keep it off the cluster's machines)\n`);
      }
      for (const peer of peers) {
        const pair = issueCertificate(ca, { ...peer, hosts }, days);
        writeFileSync(join(out, `${peer.name}.key`), pair.keyPem, { mode: 0o600, flag: 'wx' });
        writeFileSync(join(out, `${peer.name}.crt`), pair.certPem, { mode: 0o644, flag: 'wx' });
        process.stdout.write(`${peer.role} ${peer.name}: --tls-ca ${caFiles.cert} --tls-cert ${join(out, `${peer.name}.crt`)} --tls-key ${join(out, `${peer.name}.key`)}\n`);
      }
    });
  return command;
}
