/**
 * Entry point of an in-process worker thread. Model calls block the thread they run on, so each
 * worker gets its own thread and the coordinator's event loop stays free for I/O and progress.
 */
import { PLAINTEXT_LOOPBACK, type TransportSecurity } from '../proto/transport-security.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { Command, CommandResult } from '../proto/commands.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from './executor.js';
import { fixedShapeModel } from './fixed-shape-model.js';
import { openModel } from './models/load-model.js';
import { RemoteRewardScorer } from './remote-reward-scorer.js';
import { OnnxSession } from './runtime/onnx-session.js';
import { isProviderName, PROVIDER_NAMES } from './runtime/providers.js';
import type { WorkerSetup } from '../proto/worker-setup.js';
import { callRowsFor } from './fixed-shape-model.js';
import { TurnQueue } from '../async/timeouts-and-turns.js';
import { ModelRoots } from './bundles/model-roots.js';
import { SnapshotFolder } from './snapshot-folder.js';

/**
 * What the host of a worker thread decides, not the run: where the thread keeps its snapshots, and
 * which folders it may load models and rewards from. A thread starts with a run's setup and these.
 */
export interface ThreadHost {
  /** The folder of this thread's snapshots (worker/snapshot-folder.ts); absent: it keeps none. */
  readonly snapshotFolder?: string;
  /**
   * The only folders a rewards manifest (the setup's, and what it names) may come from
   * (worker/bundles/model-roots.ts); absent: any (a local run's own files).
   */
  readonly modelRoots?: readonly string[];
  /** How the thread reaches the run's reward workers, if it has any (default plaintext on loopback). */
  readonly transport?: TransportSecurity;
}

/** A thread's workerData. */
export interface ThreadStart {
  readonly setup: WorkerSetup;
  readonly host: ThreadHost;
}

/** The TLS material as it arrives in a thread: structured clone turns Buffers into Uint8Arrays. */
function threadTransport(transport: TransportSecurity): TransportSecurity {
  if (transport.kind !== 'mtls') return transport;
  const { ca, cert, key } = transport.identity;
  return { kind: 'mtls', identity: { ...transport.identity, ca: Buffer.from(ca), cert: Buffer.from(cert), key: Buffer.from(key) } };
}

export type ToWorker =
  | { readonly type: 'execute'; readonly seq: number; readonly commands: readonly Command[] }
  /** The run is closing (ThreadPool.close): release what the thread holds beyond itself, then answer 'closed'. */
  | { readonly type: 'close' };
export type FromWorker =
  | { readonly type: 'ready'; readonly description: string; readonly warnings: readonly string[] }
  /** The answer to 'close': the thread may be terminated. */
  | { readonly type: 'closed' }
  /** modelMs: the thread's time inside session.run so far (OnnxSession.runMsOnThisThread). */
  | { readonly type: 'results'; readonly seq: number; readonly results: CommandResult[]; readonly modelMs: number }
  /** NFEs the message `seq` has spent so far, while it runs (at most every PROGRESS_EVERY_MS). */
  | { readonly type: 'progress'; readonly seq: number; readonly nfe: number }
  | { readonly type: 'error'; readonly seq: number; readonly error: SerializedError }
  | { readonly type: 'fatal'; readonly error: SerializedError };

export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

function serialize(error: unknown): SerializedError {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { name: 'Error', message: String(error) };
}

/** How often a thread tells its NFEs at most: often enough for a display, rarely enough to cost nothing. */
const PROGRESS_EVERY_MS = 200;

class ProgressReporter {
  private seq: number | null = null;
  private nfe = 0;
  private last = 0;

  constructor(private readonly port: NonNullable<typeof parentPort>) {}

  start(seq: number): void {
    this.seq = seq;
    this.nfe = 0;
    this.last = performance.now();
  }

  count(latents: number): void {
    if (this.seq === null) return;
    this.nfe += latents;
    const now = performance.now();
    if (now - this.last < PROGRESS_EVERY_MS) return;
    this.last = now;
    this.port.postMessage({ type: 'progress', seq: this.seq, nfe: this.nfe } satisfies FromWorker);
  }

  stop(): void {
    this.seq = null;
  }
}

const port = parentPort;
if (port === null) throw new Error('worker/thread-main.js must run as a worker thread');

try {
  const { setup, host } = workerData as ThreadStart;
  const sampler = createSampler(setup.sampler);
  const providers = (setup.providers ?? ['cpu']).map((name) => {
    if (!isProviderName(name)) throw new RangeError(`unknown execution provider '${name}'; known: ${PROVIDER_NAMES.join(', ')}`);
    return name;
  });
  const opened = await openModel(setup.model, {
    prediction: sampler.prediction,
    providers,
    ...(setup.cuda !== undefined ? { cuda: setup.cuda } : {}),
    ...(setup.prompt !== undefined ? { prompt: setup.prompt } : {}),
    ...(setup.negativePrompt !== undefined ? { negativePrompt: setup.negativePrompt } : {}),
    ...(setup.guidanceScale !== undefined ? { guidanceScale: setup.guidanceScale } : {}),
    ...(setup.rewards !== undefined ? { rewards: setup.rewards } : {}),
    ...(host.modelRoots !== undefined ? { modelRoots: new ModelRoots(host.modelRoots) } : {}),
    ...(setup.intraOpThreads !== undefined ? { intraOpThreads: setup.intraOpThreads } : {}),
    // A denoising-only worker sends its samples to the run's reward workers: it opens no reward model.
    ...(setup.rewardWorkers !== undefined ? { remoteRewards: true } : {}),
  });
  const scorer = setup.rewardWorkers === undefined ? undefined : new RemoteRewardScorer(setup.rewardWorkers.addresses, setup.rewardWorkers.runId, opened.rewards[0]!.name, host.transport === undefined ? PLAINTEXT_LOOPBACK : threadTransport(host.transport));
  // Read before wrapping: the fallbacks are the opened bundle's, the wrapper only reshapes its calls.
  const warnings = 'fallbacks' in opened && typeof opened.fallbacks === 'function' ? (opened.fallbacks as () => string[])() : [];
  const sessions = 'sessions' in opened ? (opened.sessions as readonly { part: string; provider: string }[]) : [];
  const denoiserProvider = sessions.find((s) => s.part === 'unet' || s.part === 'transformer')?.provider;
  const rows = callRowsFor(setup.callRows, denoiserProvider, setup.batchSize);
  const model = rows === undefined ? opened : fixedShapeModel(opened, rows);
  // Noise is drawn on a helper thread while the model runs where the model runs elsewhere (a GPU): on
  // the CPU provider the helper would compete with onnxruntime's own threads (worker/noise-prefetch.ts).
  const noiseAhead = denoiserProvider !== undefined && denoiserProvider !== 'cpu';
  // What the message in work has spent, told to the coordinator's display now and then.
  const progress = new ProgressReporter(port);
  const snapshots = host.snapshotFolder === undefined ? undefined : new SnapshotFolder(host.snapshotFolder);
  const executor = new CommandExecutor(model, sampler, BigInt(setup.seed), { batchSize: setup.batchSize, onCount: (latents) => progress.count(latents), noiseAhead, ...(setup.scoreEmbeddings === true ? { scoreEmbeddings: true } : {}), ...(scorer ? { scorer } : {}), ...(snapshots ? { snapshots } : {}) });
  // Messages are handled one at a time, in arrival order: a worker's commands run in the order sent.
  // A close that throws stays an unhandled rejection, which ends the thread (the pool sees it exit).
  const messages = new TurnQueue();
  port.on('message', (message: ToWorker) => {
    void messages.run(() => (message.type === 'close' ? close() : handle(message)));
  });
  // The run is closing: the channels to its reward workers (sockets to other machines) are closed
  // here, before the pool terminates the thread; what else the thread holds ends with it.
  const close = (): void => {
    try {
      scorer?.close();
    } finally {
      port.postMessage({ type: 'closed' } satisfies FromWorker);
    }
  };
  const handle = async (message: Extract<ToWorker, { type: 'execute' }>): Promise<void> => {
    try {
      const results: CommandResult[] = [];
      progress.start(message.seq);
      for (const command of message.commands) results.push(await executor.execute(command));
      progress.stop();
      const transfer = results.flatMap((r) => r.samples.map((s) => s.data.buffer as ArrayBuffer));
      port.postMessage({ type: 'results', seq: message.seq, results, modelMs: OnnxSession.runMsOnThisThread() } satisfies FromWorker, transfer);
    } catch (error) {
      port.postMessage({ type: 'error', seq: message.seq, error: serialize(error) } satisfies FromWorker);
    }
  };
  port.postMessage({ type: 'ready', description: `thread ${model.id}${model.describe ? ` [${model.describe()}]` : ''}`, warnings } satisfies FromWorker);
} catch (error) {
  port.postMessage({ type: 'fatal', error: serialize(error) } satisfies FromWorker);
}

