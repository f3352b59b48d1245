import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { advertisedAddress } from '../cluster/advertised-address.js';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import { WorkerRegistration } from '../cluster/worker-registry.js';
import { pino } from 'pino';
import { ConfigError, resolveCudaOptions } from '../config/resolve-run-config.js';
import { cudaOptionsSchema } from '../config/run-config-schema.js';
import type { WorkerRole } from '../proto/worker-service.js';
import { WorkerServer } from '../worker/grpc-server.js';
import { isProviderName, parseByteSize, PROVIDER_NAMES } from '../worker/runtime/providers.js';
import { DEFAULT_IDLE_RUN_MS, DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_RUNS } from '../worker/run-admission.js';
import { DEFAULT_STATE_TTL_MS, defaultStateFolder, openStateFolder } from '../worker/state-folder.js';
import { LimitError } from '../errors/limit-error.js';
import { checkThreadCount, MAX_THREADS, MIN_THREAD_LIMIT, threadLimit, THREADS_PER_CPU } from '../worker/runtime/host-limits.js';
import { parseHostPort, probeListen } from './host-port.js';
import { addTransportOptions, transportFrom } from './transport-options.js';
import { addModelRootOption, checkedModelRoots } from './model-root-option.js';
import { serverCredentials } from '../proto/transport-security.js';
import { addNatsAccessOptions } from './cluster-access-options.js';
import { installStopDeadline, STOP_GRACE_MS } from './stop-signals.js';
import { addMetricsOption, startMetricsEndpoint } from './metrics-options.js';
import { markDraining, workerHealth } from '../worker/grpc-server.js';
import { followRegistration, NATS_CONDITION } from '../cluster/registration-readiness.js';

/**
 * `evosearch worker`: serve one model over gRPC until SIGTERM or SIGINT, which drain it (batches in
 * flight finish, new ones are refused, then it exits). A drain that takes longer than --drain-timeout,
 * or a second signal, ends the process at once (cli/stop-signals.ts). Prints one JSON line on stdout
 * once it listens: {"event":"listening","address":...,"model":...,"build":...}.
 */
export function buildWorkerCommand(): Command {
  const command = new Command('worker')
    .description('Serve a model to coordinators over gRPC (proto/worker.proto): the denoiser, decoder and rewards run here, on worker threads.')
    .requiredOption('--model <spec>', 'the model this worker serves: a bundle folder or analytic:gmm[?...]')
    .option('--listen <host:port>', 'address to serve on (port 0: any free port, printed on stdout; default loopback: give the host\'s address, with --tls-*, to serve other machines)', '127.0.0.1:0')
    .option('--nats <url>', 'register in this NATS cluster (heartbeats; deregistered on drain) so coordinators find this worker')
    .option('--advertise <host:port>', 'address coordinators should dial (default: the listen address, with 0.0.0.0 replaced by this host name)')
    .addOption(new Option('--role <role>', 'what this worker serves: both (denoise, decode, score), denoise (scores on the run\'s reward workers) or reward').choices(['both', 'denoise', 'reward']).default('both'))
    .option('--max-runs <n>', `runs this worker holds at once, each with its own model instance, conditioning and thread (default ${DEFAULT_MAX_RUNS}); a full worker refuses a new run, unless one is idle past --idle-run-timeout`, String(DEFAULT_MAX_RUNS))
    .option('--idle-run-timeout <seconds>', `a run with no batch for this long may be closed when a new run needs its place (default ${DEFAULT_IDLE_RUN_MS / 1000}); a live run is never closed for another`)
    .option('--max-batch-bytes <size>', `tensor bytes one run's batches may bring in at once, e.g. 2GiB (default ${DEFAULT_MAX_BATCH_BYTES / 2 ** 30}GiB); a batch past it is refused before anything is allocated`)
    .option('--state-ttl <hours>', `a run's snapshots that no live run uses and nothing wrote to for this long are deleted (default ${DEFAULT_STATE_TTL_MS / 3600_000}); a resume after that rebuilds the states, for NFEs`)
    .option('--state-dir <dir>', `where this worker keeps its runs' state snapshots, one folder per run, its owner's alone (default ${defaultStateFolder()})`)
    .option('--threads <n>', `onnxruntime threads per model session (default: one per core; at most ${THREADS_PER_CPU} per core, at least ${MIN_THREAD_LIMIT}, unless --max-threads)`)
    .option('--max-threads <n>', `raise the limit on --threads and --max-runs (default ${THREADS_PER_CPU} per CPU core, at least ${MIN_THREAD_LIMIT}; at most ${MAX_THREADS})`)
    .option('--drain-timeout <seconds>', `on SIGTERM or SIGINT, how long the batches in flight may take to finish before the worker exits anyway (default ${STOP_GRACE_MS / 1000})`)
    .option('--providers <list>', 'execution providers to try in order, e.g. cuda,cpu (default cpu)')
    .option('--cuda-device <int>', 'CUDA provider: the GPU, as an index among those this process sees (after CUDA_VISIBLE_DEVICES; default 0)')
    .option('--no-cuda-tf32', 'CUDA provider: exact float32 math instead of TF32 (NVIDIA_TF32_OVERRIDE=0)')
    .addOption(new Option('--log-level <level>', 'log level on stderr').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'));
  addModelRootOption(command, "a folder this worker may load rewards manifests (RunSetup.rewards) and what they name from; repeat for more (default: the folder of --model, and the repository's models/bundles)");
  return addMetricsOption(addTransportOptions(addNatsAccessOptions(command, 'nats')))
    .action(async (options: { metricsListen?: string; model: string; listen: string; nats?: string; advertise?: string; role: WorkerRole; maxRuns: string; idleRunTimeout?: string; stateTtl?: string; maxBatchBytes?: string; stateDir?: string; modelRoot: string[]; threads?: string; maxThreads?: string; drainTimeout?: string; providers?: string; logLevel: string; cudaDevice?: string; cudaTf32: boolean }, command: Command) => {
      // From here on SIGTERM and SIGINT end the process within seconds: at once until it serves, after
      // a drain of at most --drain-timeout once it does (the drain is set up below).
      const drainTimeout = options.drainTimeout === undefined ? STOP_GRACE_MS / 1000 : seconds(options.drainTimeout, '--drain-timeout', 3600);
      let drain: ((signal: NodeJS.Signals) => void) | null = null;
      installStopDeadline({
        what: 'the worker',
        graceMs: drainTimeout * 1000,
        hint: 'batches in flight were not finished (their coordinators rerun them on other workers)',
        stop: (signal) => (drain === null ? endBeforeServing(signal) : drain(signal)),
      });
      const providers = options.providers?.split(',').map((p) => p.trim());
      for (const p of providers ?? []) {
        if (!isProviderName(p)) throw new ConfigError('--providers', `unknown execution provider '${p}'; known: ${PROVIDER_NAMES.join(', ')}`, 'command-line flags');
      }
      const listen = parseHostPort(options.listen, '--listen');
      const transport = transportFrom(command, ['worker']);
      serverCredentials(transport, options.listen);
      if (options.advertise !== undefined) parseHostPort(options.advertise, '--advertise', 1);
      const maxThreads = options.maxThreads === undefined ? undefined : wholeNumber(options.maxThreads, '--max-threads');
      if (maxThreads !== undefined && maxThreads > MAX_THREADS) throw new LimitError('threads', `--max-threads ${maxThreads} is past the most any thread limit may be raised to, ${MAX_THREADS}; give at most ${MAX_THREADS}`);
      // --max-threads raises the machine's limit (4 per core, at least 8), never lowers it.
      const raised = maxThreads !== undefined && maxThreads > threadLimit() ? { limit: maxThreads } : {};
      const threads = options.threads === undefined ? undefined : wholeNumber(options.threads, '--threads');
      if (threads !== undefined) checkThreadCount(threads, { what: 'onnxruntime threads per model session', flag: '--threads', raiseFlag: '--max-threads', ...raised, otherwise: ' (the default, one per core, suits most machines)' });
      const maxRuns = wholeNumber(options.maxRuns, '--max-runs');
      checkThreadCount(maxRuns, { what: 'runs held at once (a worker thread each)', flag: '--max-runs', raiseFlag: '--max-threads', ...raised });
      const stateTtlMs = options.stateTtl === undefined ? undefined : hours(options.stateTtl, '--state-ttl');
      const idleRunMs = options.idleRunTimeout === undefined ? undefined : seconds(options.idleRunTimeout, '--idle-run-timeout', 7 * 24 * 3600) * 1000;
      const maxBatchBytes = options.maxBatchBytes === undefined ? undefined : byteSize(options.maxBatchBytes, '--max-batch-bytes');
      checkedModelRoots(options.modelRoot);
      const cuda = workerCudaOptions(options, command, providers ?? ['cpu']);
      // Made and checked before anything else starts, so a bad one is told at once.
      const stateDir = openStateFolder(options.stateDir ?? defaultStateFolder());
      // A port in use or a host that is not this machine's is named before the model opens.
      await probeListen(listen, '--listen', options.listen);
      const logger = pino({ level: options.logLevel, base: { pid: process.pid, role: 'worker' } }, pino.destination({ dest: 2, sync: true }));
      // Ready once its model is read and, with --nats, once it is registered (/readyz and gRPC health alike).
      const health = workerHealth(options.nats !== undefined ? { [NATS_CONDITION]: 'it is not registered in NATS yet' } : {});
      const metrics = await startMetricsEndpoint(options.metricsListen, health);
      let server: WorkerServer | null = null;
      let registration: WorkerRegistration | null = null;
      let nc: NatsConnection | null = null;
      let unfollow = () => undefined as unknown;
      let address: string;
      try {
        server = await WorkerServer.start(options.listen, {
          model: options.model,
          role: options.role,
          maxRuns,
          logger,
          transport,
          modelRoots: options.modelRoot,
          ...(idleRunMs !== undefined ? { idleRunMs } : {}),
          ...(stateTtlMs !== undefined ? { stateTtlMs } : {}),
          ...(maxBatchBytes !== undefined ? { maxBatchBytes } : {}),
          stateDir,
          ...(providers ? { providers } : {}),
          ...(cuda !== undefined ? { cuda } : {}),
          ...(threads !== undefined ? { intraOpThreads: threads } : {}),
          health,
          ...(metrics !== null ? { metrics: metrics.registry } : {}),
        });
        address = advertisedAddress(server.address, options.advertise);
        if (options.nats !== undefined) {
          nc = await connectNats(options.nats, `evosearch worker ${address}`);
          registration = await WorkerRegistration.register(nc, { id: `${hostname()}-${process.pid}-${address}`, address, model: options.model, build: server.build });
          unfollow = followRegistration(nc, registration, health.readiness);
          logger.info({ nats: options.nats, address }, 'registered');
        }
      } catch (error) {
        // Whatever is open would keep the process from ending with its error.
        await server?.close();
        if (nc !== null) await closeNats(nc);
        await metrics?.endpoint.close();
        health.close();
        throw error;
      }
      const serving = server;
      process.stdout.write(`${JSON.stringify({ event: 'listening', address, model: options.model, build: serving.build, role: options.role, ...(metrics !== null ? { metrics: metrics.endpoint.address } : {}) })}\n`);
      await new Promise<void>((resolve) => {
        drain = (signal) => {
          logger.info({ signal }, 'draining');
          markDraining(health);
          unfollow();
          // Deregister first, so no coordinator picks this worker while it drains.
          void (async () => {
            await registration?.deregister();
            await serving.drain();
            if (nc !== null) await closeNats(nc);
            await metrics?.endpoint.close();
            health.close();
          })().then(resolve);
        };
      });
    });
}

/** A signal before the worker serves: nothing to drain, so the process ends as the signal's default would. */
function endBeforeServing(signal: NodeJS.Signals): void {
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
}

/** A number of seconds from 0 to `most` given to `flag`, or ConfigError naming the flag and the value. */
function seconds(value: string, flag: string, most: number): number {
  const n = Number(value);
  if (!(/^\s*\d+(\.\d+)?\s*$/.test(value) && n <= most)) throw new ConfigError(flag, `'${value}' is not a number of seconds from 0 to ${most}`, 'command-line flags');
  return n;
}

/** A number of hours (fractions allowed, at most a year) given to `flag`, in ms; ConfigError naming the flag and the value. */
function hours(value: string, flag: string): number {
  const n = Number(value);
  if (!(/^\s*\d+(\.\d+)?\s*$/.test(value) && n > 0 && n <= 24 * 366)) throw new ConfigError(flag, `'${value}' is not a number of hours above 0, at most ${24 * 366}`, 'command-line flags');
  return n * 3600_000;
}

/** A size in bytes ("2GiB", "500MB", "1073741824") given to `flag`, or ConfigError naming the flag and the value. */
function byteSize(value: string, flag: string): number {
  const bytes = parseByteSize(value);
  if (bytes === null) throw new ConfigError(flag, `'${value}' is not a size in bytes (e.g. 1073741824, 512MiB, 2GiB)`, 'command-line flags');
  return bytes;
}

/** A positive whole number given to `flag`, or ConfigError naming the flag and the value. */
function wholeNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!(/^\s*\d+\s*$/.test(value) && Number.isSafeInteger(n) && n > 0)) throw new ConfigError(flag, `'${value}' is not a positive whole number`, 'command-line flags');
  return n;
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
