import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { HOST_PORT } from '../cluster/advertised-address.js';
import { ConfigError } from '../config/resolve-run-config.js';
import { CoordinatorServer } from '../coordinator/service/coordinator-server.js';
import { unauthenticatedMirrorWarning } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { addClusterKeyOption, addNatsAccessOptions } from './cluster-access-options.js';

/**
 * `evosearch coordinator`: accept runs from clients (proto/coordinator.proto) and run them over the
 * cluster's workers, until SIGTERM or SIGINT. Prints {"event":"listening","address":...} on stdout.
 */
export function buildCoordinatorCommand(): Command {
  const command = new Command('coordinator')
    .description('Serve runs to clients: each submitted run searches over the workers registered in NATS; events go to NATS and to watching clients; run folders are kept under --runs-dir.')
    .requiredOption('--nats <url>', 'the cluster: workers and clients find each other there')
    .option('--listen <host:port>', 'address to serve on (port 0: any free port)', '0.0.0.0:7000')
    .option('--advertise <host:port>', 'address clients should dial (default: the listen address, 0.0.0.0 replaced by this host name)')
    .option('--runs-dir <dir>', 'where run folders are kept', 'runs')
    .addOption(new Option('--log-level <level>', 'log level on stderr').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'));
  return addClusterKeyOption(addNatsAccessOptions(command, 'nats'))
    .action(async (options: { nats: string; listen: string; advertise?: string; runsDir: string; logLevel: string }) => {
      if (!HOST_PORT.test(options.listen)) throw new ConfigError('--listen', `'${options.listen}' is not host:port`, 'command-line flags');
      const logger = pino({ level: options.logLevel, base: { pid: process.pid, role: 'coordinator' } }, pino.destination({ dest: 2, sync: true }));
      // Once, here, rather than in every run's log: it is the coordinator's setting.
      const unauthenticated = unauthenticatedMirrorWarning();
      if (unauthenticated !== null) logger.warn(unauthenticated);
      const server = await CoordinatorServer.start(options.listen, { nats: options.nats, runsDir: resolve(options.runsDir), logger }, options.advertise);
      process.stdout.write(`${JSON.stringify({ event: 'listening', address: server.address })}\n`);
      await new Promise<void>((done) => {
        const stop = () => void server.stop().then(done);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
