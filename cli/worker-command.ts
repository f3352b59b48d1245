import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { advertisedAddress, HOST_PORT } from '../cluster/advertised-address.js';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import { WorkerRegistration } from '../cluster/worker-registry.js';
import { pino } from 'pino';
import { ConfigError, resolveCudaOptions } from '../config/resolve-run-config.js';
import { cudaOptionsSchema } from '../config/run-config-schema.js';
import type { WorkerRole } from '../proto/worker-service.js';
import { WorkerServer } from '../worker/grpc-server.js';
import { isProviderName, PROVIDER_NAMES } from '../worker/runtime/providers.js';

/**
 * `evosearch worker`: serve one model over gRPC until SIGTERM or SIGINT, which drain it (batches in
 * flight finish, new ones are refused, then it exits). Prints one JSON line on stdout once it listens:
 * {"event":"listening","address":...,"model":...,"build":...}.
 */
export function buildWorkerCommand(): Command {
  return new Command('worker')
    .description('Serve a model to coordinators over gRPC (proto/worker.proto): the denoiser, decoder and rewards run here, on worker threads.')
    .requiredOption('--model <spec>', 'the model this worker serves: a bundle folder or analytic:gmm[?...]')
    .option('--listen <host:port>', 'address to serve on (port 0: any free port, printed on stdout)', '0.0.0.0:0')
    .option('--nats <url>', 'register in this NATS cluster (heartbeats; deregistered on drain) so coordinators find this worker')
    .option('--advertise <host:port>', 'address coordinators should dial (default: the listen address, with 0.0.0.0 replaced by this host name)')
    .addOption(new Option('--role <role>', 'what this worker serves: both (denoise, decode, score), denoise (scores on the run\'s reward workers) or reward').choices(['both', 'denoise', 'reward']).default('both'))
    .option('--max-runs <n>', 'runs this worker holds at once, each with its own model instance and conditioning (default 8; the oldest is closed beyond)', '8')
    .option('--threads <n>', 'onnxruntime threads per model session (default: one per core)')
    .option('--providers <list>', 'execution providers to try in order, e.g. cuda,cpu (default cpu)')
    .option('--cuda-device <int>', 'CUDA provider: the GPU, as an index among those this process sees (after CUDA_VISIBLE_DEVICES; default 0)')
    .option('--no-cuda-tf32', 'CUDA provider: exact float32 math instead of TF32 (NVIDIA_TF32_OVERRIDE=0)')
    .addOption(new Option('--log-level <level>', 'log level on stderr').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .action(async (options: { model: string; listen: string; nats?: string; advertise?: string; role: WorkerRole; maxRuns: string; threads?: string; providers?: string; logLevel: string; cudaDevice?: string; cudaTf32: boolean }, command: Command) => {
      const providers = options.providers?.split(',').map((p) => p.trim());
      for (const p of providers ?? []) {
        if (!isProviderName(p)) throw new ConfigError('--providers', `unknown execution provider '${p}'; known: ${PROVIDER_NAMES.join(', ')}`, 'command-line flags');
      }
      if (!HOST_PORT.test(options.listen)) throw new ConfigError('--listen', `'${options.listen}' is not host:port`, 'command-line flags');
      const threads = options.threads === undefined ? undefined : Number(options.threads);
      if (threads !== undefined && !(Number.isInteger(threads) && threads > 0)) throw new ConfigError('--threads', `'${options.threads}' is not a positive whole number`, 'command-line flags');
      const maxRuns = Number(options.maxRuns);
      if (!(Number.isInteger(maxRuns) && maxRuns > 0)) throw new ConfigError('--max-runs', `'${options.maxRuns}' is not a positive whole number`, 'command-line flags');
      const cuda = workerCudaOptions(options, command, providers ?? ['cpu']);
      const logger = pino({ level: options.logLevel, base: { pid: process.pid, role: 'worker' } }, pino.destination({ dest: 2, sync: true }));
      const server = await WorkerServer.start(options.listen, { model: options.model, role: options.role, maxRuns, logger, ...(providers ? { providers } : {}), ...(cuda !== undefined ? { cuda } : {}), ...(threads !== undefined ? { intraOpThreads: threads } : {}) });
      const address = advertisedAddress(server.address, options.advertise);
      let registration: WorkerRegistration | null = null;
      let nc: NatsConnection | null = null;
      if (options.nats !== undefined) {
        nc = await connectNats(options.nats, `evosearch worker ${address}`);
        registration = await WorkerRegistration.register(nc, { id: `${hostname()}-${process.pid}-${address}`, address, model: options.model, build: server.build });
        logger.info({ nats: options.nats, address }, 'registered');
      }
      process.stdout.write(`${JSON.stringify({ event: 'listening', address, model: options.model, build: server.build, role: options.role })}\n`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'draining');
          // Deregister first, so no coordinator picks this worker while it drains.
          void (async () => {
            await registration?.deregister();
            await server.drain();
            if (nc !== null) await closeNats(nc);
          })().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}

/** The --cuda-* flags as the run config's `cuda` field would give them, validated by the same schema. */
function workerCudaOptions(options: { cudaDevice?: string; cudaTf32: boolean }, command: Command, providers: readonly string[]) {
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(field, detail, 'command-line flags');
  };
  const device = options.cudaDevice === undefined ? undefined : Number(options.cudaDevice);
  if (options.cudaDevice !== undefined && !/^\d+$/.test(options.cudaDevice.trim())) fail('--cuda-device', `'${options.cudaDevice}' is not a GPU index (0, 1, ...)`);
  const raw = {
    ...(device !== undefined ? { deviceId: device } : {}),
    ...(command.getOptionValueSource('cudaTf32') === 'cli' ? { tf32: options.cudaTf32 } : {}),
  };
  const parsed = cudaOptionsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    fail(`cuda.${issue.path.join('.')}`, issue.message);
  }
  return resolveCudaOptions(parsed.data!, providers.filter(isProviderName), fail);
}
