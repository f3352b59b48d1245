import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { HOST_PORT } from '../cluster/advertised-address.js';
import { ConfigError } from '../config/resolve-run-config.js';
import { coordinatorHealth, CoordinatorServer, defaultAdmission } from '../coordinator/service/coordinator-server.js';
import { addMetricsOption, startMetricsEndpoint } from './metrics-options.js';
import type { AdmissionLimits } from '../coordinator/service/admission.js';
import { getHeapStatistics } from 'node:v8';
import { addTransportOptions, transportFrom } from './transport-options.js';
import { unauthenticatedMirrorWarning } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { addClusterKeyOption, addNatsAccessOptions } from './cluster-access-options.js';
import { addModelRootOption, checkedModelRoots } from './model-root-option.js';
import { addViewOptions, viewLine, viewOptionsFrom } from './view-options.js';

/**
 * `evosearch coordinator`: accept runs from clients (proto/coordinator.proto) and run them over the
 * cluster's workers, until SIGTERM or SIGINT. Prints {"event":"listening","address":...} on stdout.
 */
export function buildCoordinatorCommand(): Command {
  const command = new Command('coordinator')
    .description('Serve runs to clients: each submitted run searches over the workers registered in NATS; events go to NATS and to watching clients; run folders are kept under --runs-dir.')
    .requiredOption('--nats <url>', 'the cluster: workers and clients find each other there')
    .option('--listen <host:port>', 'address to serve on (port 0: any free port; default loopback: give the host\'s address, with --tls-*, to serve other machines)', '127.0.0.1:7000')
    .option('--advertise <host:port>', 'address clients should dial (default: the listen address, 0.0.0.0 replaced by this host name)')
    .option('--runs-dir <dir>', 'where run folders are kept', 'runs')
    .option('--max-running <n>', 'runs that search at once; later ones wait (default 4)')
    .option('--max-queued <n>', 'runs that may wait; past it a submission is refused (default 64)')
    .option('--max-runs-per-client <n>', 'runs one client may have waiting and running (default 16)')
    .option('--max-heap-share <fraction>', "share of this process's heap the running runs' plans may take together (default 0.85)")
    .addOption(new Option('--log-level <level>', 'log level on stderr').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'));
  // The coordinator serves clients and drives workers with one certificate, a coordinator's.
  addModelRootOption(command, "a folder whose model bundles clients may name in a run (the coordinator reads a bundle's manifest to plan it); repeat for more (default: the repository's models/bundles)");
  addViewOptions(command);
  return addMetricsOption(addTransportOptions(addClusterKeyOption(addNatsAccessOptions(command, 'nats'))))
    .action(async (options: { metricsListen?: string; nats: string; listen: string; advertise?: string; runsDir: string; logLevel: string; maxRunning?: string; maxQueued?: string; maxRunsPerClient?: string; maxHeapShare?: string; modelRoot: string[]; viewListen?: string; viewTokens?: string }) => {
      if (!HOST_PORT.test(options.listen)) throw new ConfigError('--listen', `'${options.listen}' is not host:port`, 'command-line flags');
      const transport = transportFrom(command, ['coordinator']);
      checkedModelRoots(options.modelRoot);
      const admission = admissionFrom(options);
      const view = viewOptionsFrom(options, transport);
      const logger = pino({ level: options.logLevel, base: { pid: process.pid, role: 'coordinator' } }, pino.destination({ dest: 2, sync: true }));
      // Once, here, rather than in every run's log: it is the coordinator's setting.
      const unauthenticated = unauthenticatedMirrorWarning();
      if (unauthenticated !== null) logger.warn(unauthenticated);
      // Ready once its service is up and it is registered in NATS (/readyz and gRPC health alike).
      const health = coordinatorHealth();
      const metrics = await startMetricsEndpoint(options.metricsListen, health);
      let server: CoordinatorServer;
      try {
        server = await CoordinatorServer.start(options.listen, { nats: options.nats, runsDir: resolve(options.runsDir), logger, transport, admission, modelRoots: options.modelRoot, ...(view !== undefined ? { view } : {}), health, ...(metrics !== null ? { metrics: metrics.registry } : {}) }, options.advertise);
      } catch (error) {
        // An open endpoint would keep the process from ending with its error.
        await metrics?.endpoint.close();
        health.close();
        throw error;
      }
      process.stdout.write(`${JSON.stringify({ event: 'listening', address: server.address, ...(metrics !== null ? { metrics: metrics.endpoint.address } : {}) })}\n${viewLine(server.view?.url)}`);
      await new Promise<void>((done) => {
        const stop = () => void server.stop().then(done);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      await metrics?.endpoint.close();
      health.close();
    });
}

/** The admission limits the flags set (the rest: defaultAdmission), each checked and named. */
function admissionFrom(options: { maxRunning?: string; maxQueued?: string; maxRunsPerClient?: string; maxHeapShare?: string }): AdmissionLimits {
  const count = (value: string | undefined, flag: string, fallback: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!(/^\s*\d+\s*$/.test(value) && n >= 1 && n <= 100_000)) throw new ConfigError(flag, `'${value}' is not a whole number from 1 to 100000`, 'command-line flags');
    return n;
  };
  const defaults = defaultAdmission();
  let heapBytes = defaults.heapBytes;
  if (options.maxHeapShare !== undefined) {
    const share = Number(options.maxHeapShare);
    if (!(share > 0 && share <= 1)) throw new ConfigError('--max-heap-share', `'${options.maxHeapShare}' is not a fraction in (0, 1]`, 'command-line flags');
    heapBytes = getHeapStatistics().heap_size_limit * share;
  }
  return {
    maxRunning: count(options.maxRunning, '--max-running', defaults.maxRunning),
    maxWaiting: count(options.maxQueued, '--max-queued', defaults.maxWaiting),
    maxPerClient: count(options.maxRunsPerClient, '--max-runs-per-client', defaults.maxPerClient),
    heapBytes,
  };
}
