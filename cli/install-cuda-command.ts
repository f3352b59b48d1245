import { Command } from 'commander';
import {
  assertLinuxX64,
  CUDA_LIBRARY,
  CudaProviderError,
  cudaProviderStatus,
  DEFAULT_BUILD,
  describeSource,
  installCudaProvider,
  type CudaProviderStatus,
  type InstallResult,
  type MissingLibrary,
} from '../worker/runtime/cuda-provider/index.js';

interface InstallCudaOptions {
  source: string;
  archiveSha256?: string;
  into?: string;
  check?: boolean;
  fullHash?: boolean;
  tensorrt?: boolean;
}

/**
 * `evosearch install-cuda`: puts onnxruntime's CUDA provider libraries, which the onnxruntime-node
 * package does not ship and whose own download this network refuses, next to onnxruntime-node's
 * binding, checked against pinned sizes and sha256; or, with --check, says whether they are there and
 * intact and which CUDA libraries this machine still lacks.
 */
export function buildInstallCudaCommand(): Command {
  return new Command('install-cuda')
    .description(`Install onnxruntime's CUDA execution provider libraries (${DEFAULT_BUILD.id}) into onnxruntime-node, checked against pinned sizes and sha256; --check reports what is installed and what this machine still lacks.`)
    .option('--source <npm|path|url>', `where the libraries come from: npm (the package ${DEFAULT_BUILD.npm.name}@${DEFAULT_BUILD.npm.version}, fetched with npm pack), a local .tgz, or an https:// URL of one`, 'npm')
    .option('--archive-sha256 <hex>', "the archive's own sha256 (e.g. from onnxruntime's release page): checked instead of the pinned file hashes, so that another build can be installed")
    .option('--into <folder>', "where to install (default: onnxruntime-node's bin/napi-v6/linux/x64)")
    .option('--tensorrt', 'also install the TensorRT provider library')
    .option('--check', 'install nothing: report whether the provider is installed and intact, and which CUDA libraries this machine lacks (exit 0 if usable, 1 if not)')
    .option('--full-hash', "with --check: compare every file's sha256, not only its size")
    .action(async (options: InstallCudaOptions) => {
      assertLinuxX64();
      if (options.fullHash && !options.check) throw new CudaProviderError('input', '--full-hash', 'only applies to --check (an install always checks every sha256)');
      if (options.check) {
        if (options.archiveSha256 !== undefined || options.source !== 'npm') throw new CudaProviderError('input', '--check', 'installs nothing, so --source and --archive-sha256 mean nothing with it; leave them out');
        const status = await cudaProviderStatus({ ...(options.into !== undefined ? { folder: options.into } : {}), fullHash: options.fullHash === true });
        process.stdout.write(formatStatus(status, options.fullHash === true, options.tensorrt === true));
        const usable = status.usable && (!options.tensorrt || (status.tensorrtInstalled && !status.missingLibraries.some((lib) => lib.neededBy !== CUDA_LIBRARY && lib.when !== 'optional')));
        process.exitCode = usable ? 0 : 1;
        return;
      }
      const result = await installCudaProvider({
        source: options.source,
        ...(options.archiveSha256 !== undefined ? { archiveSha256: options.archiveSha256 } : {}),
        ...(options.into !== undefined ? { folder: options.into } : {}),
        tensorrt: options.tensorrt === true,
        report: (line) => process.stderr.write(`evosearch: ${line}\n`),
      });
      const status = await cudaProviderStatus({ folder: result.folder });
      process.stdout.write(formatInstall(result) + formatNeeds(status));
    });
}

function formatInstall(result: InstallResult): string {
  const m = result.manifest;
  const lines: string[] = [];
  for (const name of result.clearedStaging) lines.push(`removed ${name}, left by an install that was stopped`);
  const what = m.pinned ? `${m.build} (pinned)` : `${m.build} (not a pinned build: accepted by its archive's sha256)`;
  lines.push(result.outcome === 'unchanged' ? `already installed: ${what}, from ${describeSource(m.source)}; nothing to do` : `installed ${what} from ${describeSource(m.source)}`);
  lines.push(`  into ${result.folder}`);
  if (result.outcome === 'installed') lines.push(`  archive ${m.archive.name}: ${bytes(m.archive.size)}, sha256 ${m.archive.sha256}`);
  const check = m.pinned ? 'matches the pin' : 'recorded';
  for (const f of m.files) lines.push(`  ${f.name}: ${bytes(f.size)}, sha256 ${f.sha256} ${check}`);
  for (const name of result.removed) lines.push(`  removed ${name} of the earlier install (add --tensorrt to install this build's)`);
  return `${lines.join('\n')}\n`;
}

function formatStatus(status: CudaProviderStatus, fullHash: boolean, tensorrt: boolean): string {
  const lines: string[] = [];
  const m = status.manifest;
  if (!status.installed) lines.push(`CUDA provider in ${status.folder}: not installed`);
  else if (m !== null) lines.push(`CUDA provider in ${status.folder}: ${m.build}${m.pinned ? ' (pinned)' : ''}, from ${describeSource(m.source)}, installed ${m.installedAt}`);
  else lines.push(`CUDA provider in ${status.folder}: installed without a manifest (by hand, by onnxruntime-node's own download, or by an install stopped before its last step)${status.build ? `; sizes match ${status.build}` : '; its sizes match no pinned build'}`);
  const against = m !== null ? 'the manifest' : status.build !== null ? `the pinned build` : null;
  for (const f of status.files) {
    const state = f.problem ?? (f.size === null ? 'missing' : against === null ? `${bytes(f.size)}, nothing to check it against` : fullHash ? `${bytes(f.size)}, sha256 matches ${against}` : `${bytes(f.size)}, size matches ${against} (--full-hash compares sha256)`);
    lines.push(`  ${f.name}: ${state}`);
  }
  for (const problem of status.problems.filter((p) => !status.files.some((f) => f.problem === p))) lines.push(`  ${problem}`);
  if (tensorrt && !status.tensorrtInstalled) lines.push(`  no TensorRT provider library: run npx evosearch install-cuda --tensorrt`);
  lines.push(...needsLines(status, tensorrt));
  const blocking = status.missingLibraries.filter((lib) => lib.when !== 'optional' && (tensorrt || lib.neededBy === CUDA_LIBRARY));
  const why = !status.installed ? 'the provider is not installed' : status.problems.length > 0 ? 'its files are not as installed' : blocking.length > 0 ? `${blocking.map((lib) => lib.soname).filter((s, i, all) => all.indexOf(s) === i).join(', ')} missing` : null;
  lines.push(why === null && (!tensorrt || status.tensorrtInstalled) ? 'usable: yes' : `usable: no (${why ?? 'the TensorRT provider is not installed'})`);
  return `${lines.join('\n')}\n`;
}

function formatNeeds(status: CudaProviderStatus): string {
  return `${needsLines(status, true).join('\n')}\n`;
}

/** The system libraries found and missing, each missing one with what it is and how to get it. */
function needsLines(status: CudaProviderStatus, withTensorrt: boolean): string[] {
  const relevant = (lib: { neededBy: string }) => withTensorrt || lib.neededBy === CUDA_LIBRARY;
  const found = unique(status.foundLibraries.filter(relevant).map((lib) => `${lib.soname} (${lib.path})`));
  const missing = status.missingLibraries.filter(relevant).filter((lib, i, all) => all.findIndex((l) => l.soname === lib.soname) === i);
  const lines: string[] = [];
  if (found.length > 0) lines.push(`found on this machine: ${found.join(', ')}`);
  if (missing.length === 0) {
    lines.push('this machine has every library the provider needs');
    return lines;
  }
  lines.push(status.installed ? 'this machine still needs (the provider does not load until the dynamic loader finds them):' : 'the provider will need (not found on this machine):');
  for (const lib of missing) lines.push(`  ${describeMissing(lib)}`);
  return lines;
}

function describeMissing(lib: MissingLibrary): string {
  const when = lib.when === 'optional' ? ' [optional]' : lib.when === 'run' ? ' [opened when a session starts]' : '';
  const offPath = lib.offPath !== null ? `; it is in ${lib.offPath}, which the loader does not search: add its folder to LD_LIBRARY_PATH` : '';
  return `${lib.soname}${when}: ${lib.what}; ${lib.fix}${offPath}`;
}

function unique(values: string[]): string[] {
  return values.filter((v, i) => values.indexOf(v) === i);
}

function bytes(n: number): string {
  return `${n.toLocaleString('en-US')} bytes`;
}

