/**
 * The host:port addresses `evosearch worker` listens on and advertises, checked before anything
 * opens: a host (a name, an IPv4 address or a bracketed IPv6 one) and a port in 0-65535, with one
 * message that says which part is wrong; then a trial bind, so an address in use or not on this
 * machine is named as such instead of in gRPC's or Node's own words.
 */
import { createServer } from 'node:net';
import { FailureError } from '../errors/evosearch-error.js';
import { ConfigError } from '../config/resolve-run-config.js';

export interface HostPort {
  /** The host as given; IPv6 without its brackets. */
  readonly host: string;
  readonly port: number;
}

const SHAPE = /^(?:\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]|([^\s:[\]]+)):([^:]*)$/;
const EXAMPLES = 'e.g. 0.0.0.0:50051, 127.0.0.1:0 (port 0: any free port) or [::]:50051';

/**
 * Parses `value` as host:port for `flag`; ConfigError (exit 2) naming the flag and the part that is
 * wrong. `minPort` is 1 for an address others dial (port 0 only means "any" to a listener).
 */
export function parseHostPort(value: string, flag: string, minPort = 0): HostPort {
  const fail = (detail: string): never => {
    throw new ConfigError(flag, detail, 'command-line flags');
  };
  const match = SHAPE.exec(value.trim());
  if (match === null) return fail(`'${value}' is not host:port (${EXAMPLES})`);
  const host = match[1] ?? match[2]!;
  const portText = match[3]!;
  if (!/^\d+$/.test(portText)) return fail(`'${value}': the port '${portText}' is not a number from ${minPort} to 65535 (${EXAMPLES})`);
  const port = Number(portText);
  if (port < minPort || port > 65535) return fail(`'${value}': port ${portText} is out of range; a port is ${minPort} to 65535${minPort === 0 ? ' (0: any free port)' : ''}`);
  return { host, port };
}

/**
 * A listen flag whose bare port (`9464`, `:9464`) means loopback (`127.0.0.1:9464`): a server reaches
 * another machine only when the user names a host. Anything else is returned as given.
 */
export function loopbackUnlessHost(given: string): string {
  const trimmed = given.trim();
  return /^:?\d+$/.test(trimmed) ? `127.0.0.1:${trimmed.replace(/^:/, '')}` : given;
}

/**
 * Binds `address` for a moment and lets it go: an address in use, not on this machine, or not
 * allowed fails here, before the worker opens its model, with what to do about it.
 */
export async function probeListen(address: HostPort, flag: string, given: string): Promise<void> {
  const server = createServer();
  const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => resolve(null));
  });
  if (error === null) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return;
  }
  switch (error.code) {
    case 'EADDRINUSE':
      throw new FailureError('io', `cannot listen on ${flag} ${given}: port ${address.port} is in use on ${address.host} (another process listens there); choose another port, or port 0 for any free one`, { cause: error });
    case 'EACCES':
    case 'EPERM':
      throw new FailureError('io', `cannot listen on ${flag} ${given}: not allowed to bind port ${address.port} (ports below 1024 need privileges); choose a port from 1024 to 65535, or 0 for any free one`, { cause: error });
    case 'EADDRNOTAVAIL':
      throw new ConfigError(flag, `'${given}': ${address.host} is not an address of this machine; give one of its own addresses, 0.0.0.0 (all of them) or 127.0.0.1`, 'command-line flags', { cause: error });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      throw new ConfigError(flag, `'${given}': the host '${address.host}' does not resolve here (${error.code}); give an address of this machine, 0.0.0.0 (all of them) or 127.0.0.1`, 'command-line flags', { cause: error });
    default:
      throw new FailureError('io', `cannot listen on ${flag} ${given}: ${error.message}`, { cause: error });
  }
}
