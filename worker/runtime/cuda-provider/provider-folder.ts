import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CudaProviderError } from './errors.js';

/**
 * The package root of the onnxruntime-node that this code imports, found through Node's own resolution
 * so that hoisted, nested and workspace layouts all give the copy that actually loads.
 */
function onnxruntimeNodeRoot(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('onnxruntime-node');
  } catch (error) {
    throw new CudaProviderError('io', 'onnxruntime-node', 'the package is not installed next to evosearch (require.resolve found nothing); run npm ci, or give the folder with --into', { cause: error });
  }
  for (let dir = path.dirname(entry); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'onnxruntime-node') return dir;
    if (path.dirname(dir) === dir) throw new CudaProviderError('io', entry, 'no package.json of onnxruntime-node above the file Node resolves the package to; reinstall it (npm ci)');
  }
}

/**
 * Where onnxruntime-node looks for provider libraries on linux/x64: next to its binding
 * (dist/binding.js loads bin/napi-v6/<platform>/<arch>/onnxruntime_binding.node, and libonnxruntime.so.1
 * dlopens the providers from its own folder).
 */
export function defaultProviderFolder(): string {
  return path.join(onnxruntimeNodeRoot(), 'bin', 'napi-v6', 'linux', 'x64');
}

/** The version of the onnxruntime-node that owns `folder`, or null when the folder is not one of its own. */
export function onnxruntimeNodeVersionOf(folder: string): string | null {
  const root = path.resolve(folder, '..', '..', '..', '..');
  const manifest = path.join(root, 'package.json');
  if (!existsSync(manifest)) return null;
  try {
    const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
    return pkg.name === 'onnxruntime-node' && typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

/** The provider libraries are Linux x64 ELF files: anywhere else they cannot load, so refuse up front. */
export function assertLinuxX64(platform: string = process.platform, arch: string = process.arch): void {
  if (platform === 'linux' && arch === 'x64') return;
  throw new CudaProviderError(
    'input',
    'install-cuda',
    `onnxruntime's CUDA provider libraries exist for linux x64 only, and this machine is ${platform} ${arch}; use --providers webgpu,cpu here, or install on a Linux x64 machine with an NVIDIA GPU`,
  );
}
