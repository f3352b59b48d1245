/**
 * Execution provider names this runtime can ask onnxruntime-node for, and the CUDA provider's options.
 * Kept apart from the session code so configuration and worker start-up can validate them without
 * loading the native binding.
 */
export const PROVIDER_NAMES = ['tensorrt', 'cuda', 'webgpu', 'cpu'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];
/** CPU always opens; it ends every default list so a model loads wherever the package runs. */
export const DEFAULT_PROVIDERS: readonly ProviderName[] = ['cpu'];

export function isProviderName(value: string): value is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(value);
}

/** How cuDNN picks a convolution algorithm: exhaustive benchmarking (onnxruntime's default), its heuristics, or its default algorithm. */
export const CONV_ALGO_SEARCHES = ['exhaustive', 'heuristic', 'default'] as const;
export type ConvAlgoSearch = (typeof CONV_ALGO_SEARCHES)[number];

/**
 * Options of onnxruntime's CUDA execution provider, as configuration sets them. Every field is
 * optional: onnxruntime's own default applies where one is absent.
 */
export interface CudaProviderOptions {
  /** The GPU, as an index among the GPUs this process sees (after CUDA_VISIBLE_DEVICES). Default 0. */
  readonly deviceId?: number;
  /** TF32 tensor-core math for float32 matrix products and convolutions (onnxruntime's default: on). */
  readonly tf32?: boolean;
  readonly convAlgoSearch?: ConvAlgoSearch;
  /** Upper bound of the provider's GPU memory arena, in bytes (default: no bound). */
  readonly memoryLimitBytes?: number;
}

/**
 * What one session asks of onnxruntime for the CUDA provider. onnxruntime-node 1.29's binding passes
 * only `deviceId` from the provider object to the CUDA provider. The other options travel as session
 * configuration entries under `ep.cuda.` with onnxruntime's own option names, the prefix newer
 * providers read; 1.29's CUDA provider was not seen to read them (a 32 MiB gpu_mem_limit did not stop
 * a 64 MiB weight; bench/reports/cuda-runtime), so the run config refuses those options and only
 * bench/cuda-options.ts, the probe that checks a new binding, sends them.
 */
export interface CudaSessionSettings {
  readonly executionProvider: { readonly name: 'cuda'; readonly deviceId: number };
  readonly configEntries: Readonly<Record<string, string>>;
}

export function cudaSessionSettings(options: CudaProviderOptions = {}): CudaSessionSettings {
  const entries: Record<string, string> = {};
  const deviceId = options.deviceId ?? 0;
  entries.device_id = String(deviceId);
  if (options.tf32 !== undefined) entries.use_tf32 = options.tf32 ? '1' : '0';
  if (options.convAlgoSearch !== undefined) entries.cudnn_conv_algo_search = options.convAlgoSearch.toUpperCase();
  if (options.memoryLimitBytes !== undefined) entries.gpu_mem_limit = String(options.memoryLimitBytes);
  const configEntries: Record<string, string> = {};
  for (const [key, value] of Object.entries(entries)) configEntries[`ep.cuda.${key}`] = value;
  return { executionProvider: { name: 'cuda', deviceId }, configEntries };
}

/**
 * Settings that the CUDA libraries read from the process environment when they start, so they must be
 * in place before the first CUDA session of the process opens (and before any worker thread starts:
 * a thread's process.env is its own copy). NVIDIA_TF32_OVERRIDE=0 turns TF32 off in cuBLAS and cuDNN
 * whatever the caller asks, which is the one way to turn it off that does not depend on the binding.
 */
export function cudaProcessEnvironment(options: CudaProviderOptions = {}): Readonly<Record<string, string>> {
  return options.tf32 === false ? { NVIDIA_TF32_OVERRIDE: '0' } : {};
}

/** Human-readable form of the options, for logs and run records ("device 0, TF32 off, …"). */
export function describeCudaOptions(options: CudaProviderOptions = {}): string {
  const parts = [`device ${options.deviceId ?? 0}`];
  if (options.tf32 !== undefined) parts.push(`TF32 ${options.tf32 ? 'on' : 'off'}`);
  if (options.convAlgoSearch !== undefined) parts.push(`cuDNN ${options.convAlgoSearch} search`);
  if (options.memoryLimitBytes !== undefined) parts.push(`memory limit ${formatBytes(options.memoryLimitBytes)}`);
  return parts.join(', ');
}

const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** "8GiB", "512 MiB", "2e9", "1073741824" → bytes; null when the text is no size. */
export function parseByteSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!match) return null;
  const unit = UNITS[match[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Number(match[1]) * unit;
  return Number.isSafeInteger(Math.round(bytes)) && bytes > 0 ? Math.round(bytes) : null;
}

function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30 && bytes % 2 ** 20 === 0) return `${+(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${+(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}
