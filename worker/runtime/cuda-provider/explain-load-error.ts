import { existsSync } from 'node:fs';
import path from 'node:path';
import { CUDA_LIBRARY, describeSystemLibrary, SHARED_LIBRARY, TENSORRT_LIBRARY } from './known-builds.js';
import { defaultProviderFolder } from './provider-folder.js';
import { missingProviderLibraries } from './provider-status.js';
import { lookUpLibraries } from './system-libraries.js';

export interface ExplainOptions {
  /** The provider folder the session used; default onnxruntime-node's. */
  readonly folder?: string;
  readonly env?: NodeJS.ProcessEnv;
}

const CHECK = 'npx evosearch install-cuda --check lists all that is missing';

/**
 * A short message saying what to install, for the text onnxruntime gives when the CUDA (or TensorRT)
 * provider fails to load; null when the text is not such a failure.
 *
 * onnxruntime-node's exception says only "OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load
 * shared library"; the cause ("... with error: libcublasLt.so.13: cannot open shared object file") goes
 * to its native log on stderr. Given the log line, the library is read from it; given only the
 * exception, this looks at the provider folder and the loader's search path (no file contents are read).
 */
export function explainCudaProviderLoadError(text: string, options: ExplainOptions = {}): string | null {
  const tensorrt = /providers_tensorrt|_TensorRT\b/i.test(text);
  const provider = tensorrt ? 'TensorRT' : 'CUDA';
  const install = tensorrt ? 'npx evosearch install-cuda --tensorrt' : 'npx evosearch install-cuda';

  // "Failed to load library /x/libonnxruntime_providers_cuda.so with error: <dlerror>"
  const dlerror = /Failed to load library (\S+) with error: (.+?)(?:\n|$)/.exec(text);
  const unopenable = /(\S+\.so(?:\.[\d.]+)?): cannot open shared object file/.exec(dlerror?.[2] ?? text);
  if (unopenable) {
    const missing = unopenable[1]!;
    const base = path.basename(missing);
    if ([CUDA_LIBRARY, SHARED_LIBRARY, TENSORRT_LIBRARY].includes(base)) {
      return `onnxruntime's ${provider} provider is not installed: ${path.dirname(missing) === '.' ? 'its folder' : path.dirname(missing)} has no ${base}. Install it with: ${install}`;
    }
    return missingLibraryMessage(provider, base, options.env);
  }
  const version = /version `([^']+)' not found(?: \(required by (\S+)\))?/.exec(text);
  if (version) {
    return `the ${provider} provider cannot load: ${version[2] ? path.basename(version[2]) : 'a library'} needs symbol version ${version[1]}, which the copy the loader found lacks: an older CUDA or cuDNN comes first on LD_LIBRARY_PATH; put CUDA 13's and cuDNN 9's folders first (${CHECK})`;
  }
  const symbol = /(\S+\.so[\d.]*): undefined symbol: (\S+)/.exec(text);
  if (symbol) {
    return `the ${provider} provider cannot load: ${path.basename(symbol[1]!)} lacks the symbol ${symbol[2]}: its libraries are of mixed builds or versions; reinstall with ${install}, and check that CUDA 13's libraries come first on LD_LIBRARY_PATH`;
  }
  if (/cuDNN library was not found|CUDNN_STATUS_NOT_INITIALIZED|Unable to find symbol cudnnGetVersion/.test(text)) return missingLibraryMessage(provider, 'libcudnn.so.9', options.env);
  if (/cuFFT library was not found/.test(text)) return missingLibraryMessage(provider, 'libcufft.so.12', options.env);
  if (/CUDA driver version is insufficient/i.test(text)) {
    return `the ${provider} provider needs an NVIDIA driver new enough for CUDA 13 (580 or later), and this machine's is older: update the driver (nvidia-smi shows its version)`;
  }
  // A --cuda-device past the GPUs this process sees: onnxruntime's text is a page of template
  // signature around "CUDA failure 101: invalid device ordinal" (seen on a one-GPU H200 with device 1).
  if (/invalid device ordinal/i.test(text)) {
    const visible = options.env?.CUDA_VISIBLE_DEVICES ?? process.env.CUDA_VISIBLE_DEVICES;
    return `the ${provider} provider has no GPU of that index: this process sees fewer GPUs${visible !== undefined ? ` (CUDA_VISIBLE_DEVICES=${visible})` : ''}; --cuda-device counts from 0 among the visible GPUs (nvidia-smi -L lists them)`;
  }
  if (/no CUDA-capable device is detected/i.test(text)) {
    return `the ${provider} provider found no GPU: none is visible to this process (check nvidia-smi, and CUDA_VISIBLE_DEVICES if it is set); use --providers cpu here`;
  }
  if (/AppendExecutionProvider_(Cuda|TensorRT)\b.*Failed to load shared library/i.test(text)) return inspectMachine(provider, install, options);
  return null;
}

function missingLibraryMessage(provider: string, soname: string, env: NodeJS.ProcessEnv | undefined, others: readonly string[] = []): string {
  const lib = describeSystemLibrary(soname);
  const offPath = lookUpLibraries([soname], env).offPath.get(soname);
  const where = offPath !== undefined ? `; it is in ${path.dirname(offPath)}, which the loader does not search: add that folder to LD_LIBRARY_PATH` : '';
  const fix = lib?.fix ?? `install the package that provides ${soname} and put its folder on LD_LIBRARY_PATH`;
  const also = others.length > 0 ? `; also missing: ${others.join(', ')}` : '';
  return `the ${provider} provider cannot load: ${soname}${lib ? ` (${lib.what})` : ''} is not found on this machine; ${fix}${where}${also} (${CHECK})`;
}

/** Without the native log, the folder and the loader's search path say what is missing. */
function inspectMachine(provider: string, install: string, options: ExplainOptions): string {
  let folder: string;
  try {
    folder = options.folder ?? defaultProviderFolder();
  } catch {
    return `onnxruntime could not load its ${provider} provider libraries (the reason is in its log on stderr); ${CHECK}`;
  }
  const file = provider === 'TensorRT' ? TENSORRT_LIBRARY : CUDA_LIBRARY;
  for (const name of [file, SHARED_LIBRARY]) {
    if (!existsSync(path.join(folder, name))) return `onnxruntime's ${provider} provider is not installed: ${folder} has no ${name}. Install it with: ${install}`;
  }
  const missing = missingProviderLibraries(folder, file, options.env).filter((lib) => lib.when !== 'optional');
  if (missing.length > 0) {
    return missingLibraryMessage(provider, missing[0]!.soname, options.env, missing.slice(1).map((lib) => lib.soname));
  }
  return `onnxruntime could not load its ${provider} provider libraries from ${folder}, though they and the CUDA libraries they need are there (the reason is in onnxruntime's log on stderr); ${CHECK}`;
}
