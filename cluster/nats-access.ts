/**
 * How a process proves itself to NATS and checks NATS's certificate: a user and password, a token or
 * a NATS credentials file (.creds: a user JWT and its nkey seed), and TLS (the CA that signed the
 * server's certificate; a client certificate and key where the server verifies clients). Given by
 * flags (cli/nats-access-options.ts), the URL's user part (nats-url.ts) or these environment
 * variables, and turned into the NATS client's own authenticators and TLS options.
 *
 * Secrets never leave this file as text: describeNatsAccess names the kind of credentials, never
 * their value, and nothing here is logged.
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, tokenAuthenticator, usernamePasswordAuthenticator, type Authenticator, type ConnectionOptions, type TlsOptions } from '@nats-io/transport-node';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

export interface NatsAccess {
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  /** A NATS credentials file (nsc's .creds). */
  readonly credsFile?: string;
  /** PEM: the CA that signed the server's certificate (TLS); without it, the system's CAs. */
  readonly caFile?: string;
  /** PEM: this client's certificate and its key, for a server that verifies clients (NATS mTLS). */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** Each field's environment variable (documented in docs/cluster-security.md). */
export const NATS_ACCESS_ENV: { readonly [K in keyof Required<NatsAccess>]: string } = {
  user: 'EVOSEARCH_NATS_USER',
  password: 'EVOSEARCH_NATS_PASSWORD',
  token: 'EVOSEARCH_NATS_TOKEN',
  credsFile: 'EVOSEARCH_NATS_CREDS',
  caFile: 'EVOSEARCH_NATS_CA',
  certFile: 'EVOSEARCH_NATS_CERT',
  keyFile: 'EVOSEARCH_NATS_KEY',
};

/** The ways a process says who it is, by their fields: a layer that uses one drops the lower layers' others. */
const WAYS: readonly (readonly (keyof NatsAccess)[])[] = [['user', 'password'], ['token'], ['credsFile']];

/** Credentials or TLS files that cannot be used together or read: says which and why. */
export class NatsAccessError extends EvoSearchError {
  readonly code: ErrorCode = 'config';
  override readonly name = 'NatsAccessError';
}

export function natsAccessFromEnv(env: NodeJS.ProcessEnv = process.env): NatsAccess {
  const access: Record<string, string> = {};
  for (const [field, variable] of Object.entries(NATS_ACCESS_ENV)) {
    const value = env[variable];
    if (value !== undefined && value !== '') access[field] = value;
  }
  return access;
}

/**
 * Several sources of access, lowest first (the environment, then the URL, then flags): a later layer
 * overrides fields one by one, and a way of saying who the process is drops the lower layers' other
 * ways, so a token on the command line is not sent along with a user from the environment (while a
 * user given as a flag and its password in the environment go together).
 */
export function layerNatsAccess(...layers: readonly NatsAccess[]): NatsAccess {
  let merged: Partial<Record<keyof NatsAccess, string>> = {};
  for (const layer of layers) {
    const given = Object.fromEntries(Object.entries(layer).filter(([, value]) => value !== undefined));
    const used = WAYS.find((way) => way.some((field) => given[field] !== undefined));
    const dropped = used === undefined ? [] : WAYS.filter((way) => way !== used).flat();
    merged = { ...Object.fromEntries(Object.entries(merged).filter(([field]) => !dropped.includes(field as keyof NatsAccess))), ...given };
  }
  return merged;
}

/** A NatsAccessError when the access cannot be used: a password without a user, two ways of proving who one is, half a client certificate. */
export function checkNatsAccess(access: NatsAccess): void {
  const ways = [access.user !== undefined && 'a user', access.token !== undefined && 'a token', access.credsFile !== undefined && 'a credentials file'].filter((w): w is string => w !== false);
  if (ways.length > 1) throw new NatsAccessError(`NATS credentials: give one of a user and password, a token or a credentials file, not ${ways.join(' and ')}`);
  if (access.password !== undefined && access.user === undefined) throw new NatsAccessError(`NATS credentials: a password needs its user (--nats-user, ${NATS_ACCESS_ENV.user}, or nats://user:password@host)`);
  if ((access.certFile === undefined) !== (access.keyFile === undefined)) {
    throw new NatsAccessError(`NATS TLS: a client certificate needs its key and a key its certificate (--nats-cert and --nats-key, or ${NATS_ACCESS_ENV.certFile} and ${NATS_ACCESS_ENV.keyFile}), got only the ${access.certFile === undefined ? 'key' : 'certificate'}`);
  }
}

/**
 * The NATS client's connection options for `access`: authenticators and TLS, the files read now so a
 * missing one is named by its flag. `url` decides TLS too: `tls://` asks for it without a CA file.
 */
export function natsConnectOptions(access: NatsAccess, url: string): Pick<ConnectionOptions, 'authenticator' | 'tls'> {
  checkNatsAccess(access);
  const authenticators: Authenticator[] = [];
  if (access.user !== undefined) authenticators.push(usernamePasswordAuthenticator(access.user, access.password));
  if (access.token !== undefined) authenticators.push(tokenAuthenticator(access.token));
  if (access.credsFile !== undefined) authenticators.push(credsAuthenticator(readAccessFile(access.credsFile, '--nats-creds', NATS_ACCESS_ENV.credsFile)));
  const tls: TlsOptions = {
    ...(access.caFile !== undefined ? { ca: readAccessFile(access.caFile, '--nats-ca', NATS_ACCESS_ENV.caFile).toString() } : {}),
    ...(access.certFile !== undefined ? { cert: readAccessFile(access.certFile, '--nats-cert', NATS_ACCESS_ENV.certFile).toString() } : {}),
    ...(access.keyFile !== undefined ? { key: readAccessFile(access.keyFile, '--nats-key', NATS_ACCESS_ENV.keyFile).toString() } : {}),
  };
  const wantsTls = Object.keys(tls).length > 0 || url.split(',').some((server) => server.trim().startsWith('tls://'));
  return { ...(authenticators.length > 0 ? { authenticator: authenticators } : {}), ...(wantsTls ? { tls } : {}) };
}

function readAccessFile(file: string, flag: string, variable: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new NatsAccessError(`${flag} (or ${variable}) ${file}: cannot read it (${(error as Error).message})`, { cause: error });
  }
}

/** Who the process is to NATS, and how it checks NATS, without a secret in it: "user 'worker' (password), TLS (CA ca.pem)". */
export function describeNatsAccess(access: NatsAccess): string {
  const who =
    access.user !== undefined ? `user '${access.user}'${access.password !== undefined ? ' (password)' : ''}`
    : access.token !== undefined ? 'a token'
    : access.credsFile !== undefined ? `credentials file ${access.credsFile}`
    : 'no credentials';
  const tls = [access.caFile !== undefined && `CA ${access.caFile}`, access.certFile !== undefined && `client certificate ${access.certFile}`].filter((t): t is string => t !== false);
  return `${who}${tls.length > 0 ? `, TLS (${tls.join(', ')})` : ''}`;
}

/**
 * The access this process connects with where a caller names none: set by the command line
 * (`useNatsAccess`), else read once from the environment. It is per process because the coordinator
 * service and every cluster run connect on their own.
 */
let processAccess: NatsAccess | undefined;

export function useNatsAccess(access: NatsAccess): void {
  checkNatsAccess(access);
  processAccess = access;
}

export function processNatsAccess(): NatsAccess {
  return (processAccess ??= natsAccessFromEnv());
}
