/**
 * One ONNX model opened with onnxruntime-node on the first execution provider that works, in the order
 * configuration gives, with the graph's input and output metadata read from the session (names, element
 * types, ranks, fixed or symbolic dims) rather than assumed: exports of the same model differ in all of
 * these (see shared/reference/onnx-layouts.md).
 */
import * as ort from 'onnxruntime-node';
import { explainCudaProviderLoadError } from './cuda-provider/index.js';
import { ModelLayoutError } from './model-layout-error.js';

import { cudaExecutionProvider, DEFAULT_PROVIDERS, isProviderName, PROVIDER_NAMES, type CudaProviderOptions, type ProviderName } from './providers.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

export { DEFAULT_PROVIDERS, isProviderName, PROVIDER_NAMES, type CudaProviderOptions, type ProviderName } from './providers.js';

/** One provider tried while opening a session. */
export interface ProviderAttempt {
  readonly provider: ProviderName;
  readonly ok: boolean;
  /** Why it did not open (the runtime's message), when it did not. */
  readonly error?: string;
}

/** No provider in the list could open the model: every attempt and its failure is listed. */
export class ProviderUnavailableError extends EvoSearchError {
  readonly code: ErrorCode = 'provider';
  override readonly name = 'ProviderUnavailableError';
  constructor(readonly file: string, readonly attempts: readonly ProviderAttempt[], options?: { cause?: unknown }) {
    super(`${file}: no execution provider could open the model (${attempts.map((a) => `${a.provider}: ${a.error}`).join('; ')}); add 'cpu' to the provider list or check the provider's libraries`, options);
  }
}

/** What the graph declares for one input or output. */
export interface TensorInfo {
  readonly name: string;
  readonly type: ort.Tensor.Type;
  /** Dims as declared: a number is fixed, a string is symbolic (any size). Empty for rank 0. */
  readonly dims: readonly (number | string)[];
  readonly rank: number;
}

/** Constraints a loader places on one input or output. */
export interface TensorExpectation {
  readonly types: readonly ort.Tensor.Type[];
  /** Accepted ranks. */
  readonly ranks?: readonly number[];
  /** Per-axis sizes that must match where the graph fixes them (null: any). */
  readonly dims?: readonly (number | null)[];
}

export interface OpenSessionOptions {
  /** Providers to try in order; the first that opens the model is used. Defaults to DEFAULT_PROVIDERS. */
  readonly providers?: readonly ProviderName[];
  /** Threads per session for the CPU provider (onnxruntime's default when absent). */
  readonly intraOpThreads?: number;
  /** Options of the CUDA provider (device, TF32, cuDNN search, memory limit), used when it is tried. */
  readonly cuda?: CudaProviderOptions;
}

/**
 * A provider's shared library that fails to load makes onnxruntime print its native error at error
 * level from the process-wide logger (a page of red text per session), while the exception carries
 * only "Failed to load shared library". The attempt list reports failures instead, with the cause
 * found by looking at the machine (attemptError), so the runtime's logger keeps to fatal
 * errors. It is set once, before the first session creates the runtime's environment.
 */
let runtimeLogLevelSet = false;
function quietRuntimeLogger(): void {
  if (runtimeLogLevelSet) return;
  runtimeLogLevelSet = true;
  ort.env.logLevel = 'fatal';
}

/**
 * What a failed attempt reports: for the CUDA and TensorRT providers, what is missing and how to get it
 * (the provider library, a CUDA or cuDNN library, a driver), found by looking at the provider folder
 * and the loader's path; otherwise the runtime's own first line.
 */
function attemptError(provider: ProviderName, error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  if (provider === 'cuda' || provider === 'tensorrt') {
    const explained = explainCudaProviderLoadError(text);
    if (explained !== null) return explained;
  }
  return firstLine(error);
}

let runMsOnThisThread = 0;

export class OnnxSession {
  /** The provider that opened the session. */
  readonly provider: ProviderName;
  readonly inputs: ReadonlyMap<string, TensorInfo>;
  readonly outputs: ReadonlyMap<string, TensorInfo>;

  /**
   * Milliseconds this thread has spent inside session.run, all sessions together: the rest of a
   * worker's busy time is the runtime's own (copies, scheduler math, tensor transfer).
   */
  static runMsOnThisThread(): number {
    return runMsOnThisThread;
  }

  private constructor(
    readonly file: string,
    private readonly session: ort.InferenceSession,
    provider: ProviderName,
    /** Every provider tried, in order, including the failures before the one that opened. */
    readonly attempts: readonly ProviderAttempt[],
  ) {
    this.provider = provider;
    this.inputs = metadataMap(file, session.inputMetadata);
    this.outputs = metadataMap(file, session.outputMetadata);
  }

  /**
   * Opens `file` with each provider in turn. A provider is tried alone (not as a list) so that the
   * runtime cannot silently fall back to CPU under a GPU's name: the provider reported is the one that ran.
   */
  static async open(file: string, options: OpenSessionOptions = {}): Promise<OnnxSession> {
    const providers = options.providers ?? DEFAULT_PROVIDERS;
    if (providers.length === 0) throw new RangeError(`${file}: the execution provider list is empty`);
    const attempts: ProviderAttempt[] = [];
    let lastError: unknown;
    quietRuntimeLogger();
    for (const provider of providers) {
      if (!isProviderName(provider)) throw new RangeError(`unknown execution provider '${String(provider)}'; known: ${PROVIDER_NAMES.join(', ')}`);
      try {
        const session = await ort.InferenceSession.create(file, { ...sessionOptionsFor(provider, options), logSeverityLevel: 3 });
        attempts.push({ provider, ok: true });
        return new OnnxSession(file, session, provider, attempts);
      } catch (error) {
        lastError = error;
        attempts.push({ provider, ok: false, error: attemptError(provider, error) });
        // A model that cannot be read fails the same way on every provider: stop at once.
        if (isModelFileError(error)) throw new ProviderUnavailableError(file, attempts, { cause: error });
      }
    }
    throw new ProviderUnavailableError(file, attempts, { cause: lastError });
  }

  /** The declared input `name`, checked against `expected`; throws ModelLayoutError naming the file. */
  input(name: string, expected?: TensorExpectation): TensorInfo {
    return check(this.file, 'input', this.inputs, name, expected);
  }

  output(name: string, expected?: TensorExpectation): TensorInfo {
    return check(this.file, 'output', this.outputs, name, expected);
  }

  /** The graph's declared inputs' names, in order. */
  inputNames(): string[] {
    return [...this.inputs.keys()];
  }

  /** The first of `names` the graph has as an input, or null. */
  findInput(names: readonly string[]): TensorInfo | null {
    for (const name of names) {
      const info = this.inputs.get(name);
      if (info) return info;
    }
    return null;
  }

  async run(feeds: Record<string, ort.Tensor>, outputs?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const started = performance.now();
    try {
      return outputs === undefined ? await this.session.run(feeds) : await this.session.run(feeds, [...outputs]);
    } finally {
      runMsOnThisThread += performance.now() - started;
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** One line for logs: file, provider, and why earlier providers failed. */
  describe(): string {
    const failed = this.attempts.filter((a) => !a.ok).map((a) => `${a.provider} failed: ${a.error}`);
    return `${this.file} on ${this.provider}${failed.length ? ` (${failed.join('; ')})` : ''}`;
  }
}

/** The session options one provider is tried with: the provider alone, and its own settings. */
function sessionOptionsFor(provider: ProviderName, options: OpenSessionOptions): ort.InferenceSession.SessionOptions {
  const threads = options.intraOpThreads !== undefined ? { intraOpNumThreads: options.intraOpThreads } : {};
  return { executionProviders: [provider === 'cuda' ? cudaExecutionProvider(options.cuda) : provider], ...threads };
}

function metadataMap(file: string, metadata: readonly ort.InferenceSession.ValueMetadata[]): Map<string, TensorInfo> {
  const map = new Map<string, TensorInfo>();
  for (const value of metadata) {
    if (!value.isTensor) throw new ModelLayoutError(file, value.name, 'a tensor', 'a non-tensor value (sequence or map)');
    // An undefined shape also reads as []: such a graph is treated as rank 0, which holds for the
    // timestep it occurs on in practice, and a wrong guess fails in run() with the runtime's message.
    map.set(value.name, { name: value.name, type: value.type, dims: value.shape, rank: value.shape.length });
  }
  return map;
}

function check(file: string, side: 'input' | 'output', map: ReadonlyMap<string, TensorInfo>, name: string, expected?: TensorExpectation): TensorInfo {
  const label = side === 'input' ? `input '${name}'` : `output '${name}'`;
  const info = map.get(name);
  if (!info) {
    const present = [...map.keys()].map((n) => `'${n}'`).join(', ') || 'none';
    throw new ModelLayoutError(file, label, `an ${side} named '${name}'`, `${side}s ${present}`);
  }
  if (!expected) return info;
  if (!expected.types.includes(info.type)) throw new ModelLayoutError(file, label, `element type ${expected.types.join(' or ')}`, info.type);
  if (expected.ranks && !expected.ranks.includes(info.rank)) {
    throw new ModelLayoutError(file, label, `rank ${expected.ranks.join(' or ')}`, `rank ${info.rank} [${info.dims.join(', ')}]`);
  }
  expected.dims?.forEach((want, axis) => {
    const have = info.dims[axis];
    if (want !== null && typeof have === 'number' && have !== want) {
      throw new ModelLayoutError(file, label, `size ${want} on axis ${axis}`, `[${info.dims.join(', ')}]`);
    }
  });
  return info;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.trim();
}

/** Errors that say the file itself is unreadable (missing, not a model, missing external data). */
function isModelFileError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  // Not 'No such file': a GPU provider whose shared library is missing says that too.
  return /Load model from .* failed|Protobuf parsing failed|external data|onnx_data/i.test(message) && !/ExecutionProvider/.test(message);
}

/** The fixed size of axis 0 when the graph fixes it (a static-batch export), else null. */
export function fixedBatch(info: TensorInfo): number | null {
  const dim = info.dims[0];
  return typeof dim === 'number' && dim > 0 ? dim : null;
}
