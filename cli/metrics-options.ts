/**
 * `--metrics-listen` of `evosearch coordinator` and `evosearch worker`: where the plain HTTP endpoint
 * of metrics/http-endpoint.ts listens (GET /metrics, /livez, /readyz). Off unless given; a bare port
 * (`9464`, `:9464`) listens on loopback, so the counts reach another machine only when the user names
 * a host. The endpoint starts before the server does, so /readyz answers 503 while it comes up.
 */
import type { Command } from 'commander';
import { MetricsEndpoint } from '../metrics/http-endpoint.js';
import type { ProcessHealth } from '../metrics/process-health.js';
import { processRegistry, type Registry } from '../metrics/registry.js';
import { healthMetrics } from '../metrics/health-metrics.js';
import { loopbackUnlessHost, parseHostPort, probeListen } from './host-port.js';

export function addMetricsOption(command: Command): Command {
  return command.option('--metrics-listen <[host:]port>', 'serve plain HTTP here: GET /metrics (Prometheus), /livez and /readyz (default off; a port alone listens on 127.0.0.1)');
}

/** The endpoint the flag asks for, listening, with a registry of its own; null without the flag. */
export async function startMetricsEndpoint(given: string | undefined, health: ProcessHealth): Promise<{ readonly endpoint: MetricsEndpoint; readonly registry: Registry } | null> {
  if (given === undefined) return null;
  const address = parseHostPort(loopbackUnlessHost(given), '--metrics-listen');
  // A port in use or a host that is not this machine's is named as such, as for --listen.
  await probeListen(address, '--metrics-listen', given);
  const registry = processRegistry();
  healthMetrics(registry, health);
  return { endpoint: await MetricsEndpoint.start(address.host, address.port, registry, health), registry };
}
