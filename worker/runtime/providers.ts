/**
 * Execution provider names this runtime can ask onnxruntime-node for. Kept apart from the session code
 * so configuration and worker start-up can validate names without loading the native binding.
 */
export const PROVIDER_NAMES = ['tensorrt', 'cuda', 'webgpu', 'cpu'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];
/** CPU always opens; it ends every default list so a model loads wherever the package runs. */
export const DEFAULT_PROVIDERS: readonly ProviderName[] = ['cpu'];

export function isProviderName(value: string): value is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(value);
}
