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

import type { CudaProviderOptions } from '../../proto/worker-setup.js';

export type { CudaProviderOptions };

/** The provider entry of a session's options: the binding reads `deviceId` and nothing else. */
export function cudaExecutionProvider(options: CudaProviderOptions = {}): { readonly name: 'cuda'; readonly deviceId: number } {
  return { name: 'cuda', deviceId: options.deviceId ?? 0 };
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
