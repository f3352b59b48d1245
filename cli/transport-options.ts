/**
 * The flags every command that speaks gRPC between processes takes: the cluster's certificates for
 * mutual TLS, or --insecure for plaintext on loopback. Neither given is an error that says how to get
 * certificates, so a cluster never runs in plaintext by accident.
 */
import type { Command } from 'commander';
import { PLAINTEXT_LOOPBACK, type TransportSecurity } from '../proto/transport-security.js';
import { loadTlsIdentity } from '../security/tls-identity.js';
import type { PeerRole } from '../security/peer-roles.js';
import { ConfigError } from '../config/resolve-run-config.js';

/** Each flag, and the environment variable that gives it when the flag is absent. */
const FLAGS = { tlsCa: ['--tls-ca', 'EVOSEARCH_TLS_CA'], tlsCert: ['--tls-cert', 'EVOSEARCH_TLS_CERT'], tlsKey: ['--tls-key', 'EVOSEARCH_TLS_KEY'] } as const;
const INSECURE_ENV = 'EVOSEARCH_INSECURE';

export function addTransportOptions(command: Command): Command {
  return command
    .option('--tls-ca <file>', `gRPC over mutual TLS: the cluster's CA certificate (made by \`evosearch certs\`; env ${FLAGS.tlsCa[1]})`)
    .option('--tls-cert <file>', `this process's certificate, signed by that CA (env ${FLAGS.tlsCert[1]})`)
    .option('--tls-key <file>', `the certificate's private key (env ${FLAGS.tlsKey[1]})`)
    .option('--insecure', `plaintext gRPC instead, to and from loopback addresses only (env ${INSECURE_ENV}=1)`);
}

/**
 * How this process's gRPC is secured, from the flags (or their environment variables). `roles`: the
 * roles this command's certificate may have (a worker's must be a worker's), checked now rather than
 * at the first handshake.
 */
export function transportFrom(command: Command, roles: readonly PeerRole[], env: NodeJS.ProcessEnv = process.env): TransportSecurity {
  const value = (key: keyof typeof FLAGS): string | undefined => (command.getOptionValue(key) as string | undefined) ?? (env[FLAGS[key][1]] || undefined);
  const files = { ca: value('tlsCa'), cert: value('tlsCert'), key: value('tlsKey') };
  const given = Object.values(files).filter((f) => f !== undefined).length;
  const insecureFlag = command.getOptionValue('insecure') === true;
  if (given === 0) {
    if (insecureFlag || env[INSECURE_ENV] === '1') return PLAINTEXT_LOOPBACK;
    throw new ConfigError('--tls-ca, --tls-cert, --tls-key', `gRPC between processes needs the cluster's certificates (\`evosearch certs --out certs --worker w1 --coordinator c1 --client me\` makes a CA and them), or --insecure for plaintext on loopback addresses only`, 'command-line flags');
  }
  // The environment's EVOSEARCH_INSECURE is a default for when no certificates are given; the flag is a choice.
  if (insecureFlag) throw new ConfigError('--insecure', 'give either the TLS files or --insecure, not both', 'command-line flags');
  const missing = (Object.keys(FLAGS) as (keyof typeof FLAGS)[]).filter((key) => value(key) === undefined).map((key) => FLAGS[key][0]);
  if (missing.length > 0) throw new ConfigError(missing.join(', '), `missing: mutual TLS needs all three of --tls-ca, --tls-cert and --tls-key`, 'command-line flags');
  const identity = loadTlsIdentity({ ca: files.ca!, cert: files.cert!, key: files.key! });
  if (!roles.includes(identity.role)) throw new ConfigError('--tls-cert', `${files.cert} is the certificate of ${identity.role} '${identity.name}'; this command needs a ${roles.join(' or ')} certificate`, 'command-line flags');
  return { kind: 'mtls', identity };
}
