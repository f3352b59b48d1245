/**
 * `evosearch health`: asks a coordinator or a worker its gRPC health (grpc.health.v1.Health Check,
 * proto/health-service.ts), once, for container health checks and Kubernetes exec probes. Exit 0 and
 * "SERVING" on stdout when it serves; otherwise one line on stderr saying what was found, and exit 3
 * (not serving, unreachable: retrying may work) or 2 (no service of that name, a certificate the
 * server does not take or that this side does not take: the flags are wrong).
 */
import { Command } from 'commander';
import { ConfigError } from '../config/resolve-run-config.js';
import { probeHealth } from '../proto/health-client.js';
import { LIVENESS_SERVICE } from '../proto/health-service.js';
import { PEER_ROLES } from '../security/peer-roles.js';
import { parseHostPort } from './host-port.js';
import { addTransportOptions, transportFrom } from './transport-options.js';

const DEFAULT_TIMEOUT_MS = 5000;

export function buildHealthCommand(): Command {
  const command = new Command('health')
    .description('Ask a coordinator or worker whether it serves (the standard gRPC health service). Exit 0 when SERVING; else one line saying what was found, and exit 3 (not serving, unreachable) or 2 (an unknown service name, a TLS certificate refused).')
    .requiredOption('--address <host:port>', 'the gRPC address of the coordinator or worker (its --listen or --advertise)')
    .option('--service <name>', `'' (the default): the whole process, live and ready; '${LIVENESS_SERVICE}': only that its event loop responds; or its gRPC service's name (evosearch.worker.v1.Worker, evosearch.coordinator.v1.Coordinator)`, '')
    .option('--timeout-ms <n>', `how long to wait for the answer, in milliseconds (default ${DEFAULT_TIMEOUT_MS})`);
  // Any certificate of the cluster's CA may ask: a probe runs with whichever its machine has.
  return addTransportOptions(command).action(async (options: { address: string; service: string; timeoutMs?: string }) => {
    parseHostPort(options.address, '--address', 1);
    const timeoutMs = options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : Number(options.timeoutMs);
    if (!(options.timeoutMs === undefined || (/^\s*\d+\s*$/.test(options.timeoutMs) && timeoutMs >= 1 && timeoutMs <= 600_000))) throw new ConfigError('--timeout-ms', `'${options.timeoutMs}' is not a whole number of milliseconds from 1 to 600000`, 'command-line flags');
    const transport = transportFrom(command, PEER_ROLES);
    await probeHealth(options.address, options.service, timeoutMs, transport);
    process.stdout.write(`${options.address} ${options.service === '' ? "''" : options.service}: SERVING\n`);
  });
}
