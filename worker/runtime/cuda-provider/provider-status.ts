import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { readNeededLibraries } from './elf-needed.js';
import { BASE_SYSTEM_LIBRARIES, CUDA_LIBRARY, DEFAULT_BUILD, describeSystemLibrary, KNOWN_BUILDS, SHARED_LIBRARY, TENSORRT_LIBRARY, type KnownBuild, type ProviderFileName, type SystemLibrary } from './known-builds.js';
import { MANIFEST_FILE, readManifest, type ProviderManifest } from './manifest.js';
import { defaultProviderFolder, onnxruntimeNodeVersionOf } from './provider-folder.js';
import { sha256OfFile } from './read-archive.js';
import { lookUpLibraries } from './system-libraries.js';

export interface ProviderFileStatus {
  readonly name: ProviderFileName;
  /** Size on disk; null when the file is not there. */
  readonly size: number | null;
  /** What the manifest (or, without one, the matching pinned build) says. */
  readonly expected: { readonly size: number; readonly sha256: string } | null;
  /** Computed only when asked for (fullHash). */
  readonly sha256: string | null;
  /** Why the file is not as expected; null when it is, or when nothing is expected of it. */
  readonly problem: string | null;
}

export interface MissingLibrary extends SystemLibrary {
  readonly neededBy: ProviderFileName;
  /** The library exists here, in a folder the dynamic loader does not search. */
  readonly offPath: string | null;
}

export interface CudaProviderStatus {
  readonly folder: string;
  /** The CUDA provider library and its bridge are both in the folder. */
  readonly installed: boolean;
  readonly tensorrtInstalled: boolean;
  readonly manifest: ProviderManifest | null;
  /** The build installed: from the manifest, or a pinned build whose sizes the files have; null if unknown. */
  readonly build: string | null;
  readonly files: readonly ProviderFileStatus[];
  readonly foundLibraries: readonly { readonly soname: string; readonly path: string; readonly neededBy: ProviderFileName }[];
  readonly missingLibraries: readonly MissingLibrary[];
  /** Problems with the installed files (missing, changed, of another onnxruntime). */
  readonly problems: readonly string[];
  /** The CUDA provider should load: installed, intact, and no library it needs at load or session start is missing. */
  readonly usable: boolean;
}

export interface StatusOptions {
  /** Default: onnxruntime-node's bin/napi-v6/linux/x64. */
  readonly folder?: string;
  /** Compare every file's sha256 (reads 230 MB), not only its size. */
  readonly fullHash?: boolean;
  /** Whose LD_LIBRARY_PATH to search; default this process's. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Whether the CUDA provider is installed in `folder`, intact, and has what it needs on this machine. */
export async function cudaProviderStatus(options: StatusOptions = {}): Promise<CudaProviderStatus> {
  const folder = path.resolve(options.folder ?? defaultProviderFolder());
  const inspected = inspectFolder(folder);
  const files: ProviderFileStatus[] = [];
  for (const file of inspected.files) {
    if (!options.fullHash || file.size === null || file.problem !== null) {
      files.push(file);
      continue;
    }
    const sha256 = await sha256OfFile(path.join(folder, file.name));
    const problem = file.expected !== null && sha256 !== file.expected.sha256 ? `${path.join(folder, file.name)} has sha256 ${sha256}, but ${inspected.manifest ? MANIFEST_FILE : `the pinned build ${inspected.build}`} says ${file.expected.sha256}: the file was changed or damaged; reinstall with npx evosearch install-cuda` : null;
    files.push({ ...file, sha256, problem });
  }
  const problems = [...inspected.problems, ...files.flatMap((f) => (f.problem === null ? [] : [f.problem]))];
  const libraries = libraryReport(folder, inspected, options.env ?? process.env);
  const blocking = libraries.missing.filter((lib) => lib.neededBy === CUDA_LIBRARY && lib.when !== 'optional');
  return {
    folder,
    installed: inspected.installed,
    tensorrtInstalled: inspected.files.some((f) => f.name === TENSORRT_LIBRARY && f.size !== null),
    manifest: inspected.manifest,
    build: inspected.build,
    files,
    foundLibraries: libraries.found,
    missingLibraries: libraries.missing,
    problems,
    usable: inspected.installed && problems.length === 0 && blocking.length === 0,
  };
}

interface Inspection {
  readonly installed: boolean;
  readonly manifest: ProviderManifest | null;
  readonly build: string | null;
  readonly knownBuild: KnownBuild | null;
  readonly files: ProviderFileStatus[];
  readonly problems: string[];
}

/** The folder's provider files against its manifest, by size: no reading of file contents. */
export function inspectFolder(folder: string): Inspection {
  const sizeOf = (name: string): number | null => {
    const file = path.join(folder, name);
    return existsSync(file) ? statSync(file).size : null;
  };
  const manifest = readManifest(folder);
  const problems: string[] = [];
  const files: ProviderFileStatus[] = [];
  const present = ([SHARED_LIBRARY, CUDA_LIBRARY, TENSORRT_LIBRARY] as const).filter((name) => sizeOf(name) !== null);
  let knownBuild: KnownBuild | null = null;
  if (manifest !== null) {
    knownBuild = manifest.pinned ? (KNOWN_BUILDS.find((b) => b.id === manifest.build) ?? null) : null;
    for (const listed of manifest.files) {
      const size = sizeOf(listed.name);
      const where = path.join(folder, listed.name);
      const problem =
        size === null && listed.name === CUDA_LIBRARY ? null // said once below, for every case of a missing CUDA library
        : size === null ? `${where} is missing, though ${MANIFEST_FILE} lists it; reinstall with npx evosearch install-cuda` : size !== listed.size ? `${where} is ${size} bytes, but ${MANIFEST_FILE} says ${listed.size}: the file was changed or damaged; reinstall with npx evosearch install-cuda` : null;
      files.push({ name: listed.name, size, expected: { size: listed.size, sha256: listed.sha256 }, sha256: null, problem });
    }
    for (const name of present.filter((n) => !manifest.files.some((f) => f.name === n))) {
      files.push({ name, size: sizeOf(name), expected: null, sha256: null, problem: null });
    }
  } else {
    // Installed by hand, by onnxruntime-node's own postinstall, or by an install stopped just before its
    // manifest: the pinned sizes still tell a known build apart from another.
    knownBuild = present.length > 0 ? (KNOWN_BUILDS.find((b) => present.every((name) => b.files[name].size === sizeOf(name))) ?? null) : null;
    for (const name of present) files.push({ name, size: sizeOf(name), expected: knownBuild ? knownBuild.files[name] : null, sha256: null, problem: null });
    if (existsSync(path.join(folder, MANIFEST_FILE))) problems.push(`${path.join(folder, MANIFEST_FILE)} cannot be read as an install manifest; reinstall with npx evosearch install-cuda`);
  }
  const has = (name: string): boolean => sizeOf(name) !== null;
  const installed = has(CUDA_LIBRARY) && has(SHARED_LIBRARY);
  if (!has(CUDA_LIBRARY)) problems.unshift(`no ${CUDA_LIBRARY} in ${folder}: the CUDA provider is not installed; run npx evosearch install-cuda`);
  else if (!has(SHARED_LIBRARY) && manifest === null) problems.unshift(`${folder} has ${CUDA_LIBRARY} but not ${SHARED_LIBRARY}, through which onnxruntime loads it; run npx evosearch install-cuda`);
  const version = onnxruntimeNodeVersionOf(folder);
  if (knownBuild !== null && version !== null && version !== knownBuild.onnxruntimeVersion) {
    problems.push(`the provider in ${folder} is onnxruntime ${knownBuild.onnxruntimeVersion}'s (${knownBuild.id}), but onnxruntime-node there is ${version}: providers only load into their own version; reinstall onnxruntime-node@${knownBuild.onnxruntimeVersion} or run npx evosearch install-cuda for this one`);
  }
  return { installed, manifest, build: manifest?.build ?? knownBuild?.id ?? null, knownBuild, files, problems };
}

/**
 * What each installed provider library needs from the machine: a known build's list, or for another
 * build its ELF NEEDED entries plus cuDNN 9 (dlopened, so not among them). Before an install, what the
 * default build will need.
 */
function neededBy(folder: string, inspection: Inspection): { lib: SystemLibrary; neededBy: ProviderFileName }[] {
  const needs: { lib: SystemLibrary; neededBy: ProviderFileName }[] = [];
  for (const provider of [CUDA_LIBRARY, TENSORRT_LIBRARY] as const) {
    const installed = existsSync(path.join(folder, provider));
    if (!installed && provider === TENSORRT_LIBRARY) continue;
    const known = inspection.knownBuild ?? (installed ? null : DEFAULT_BUILD);
    let list: readonly SystemLibrary[];
    if (known !== null) {
      list = known.needs[provider];
    } else {
      const needed = readNeededLibraries(path.join(folder, provider)) ?? [];
      const cudnn = describeSystemLibrary('libcudnn.so.9')!;
      list = [...needed.filter((soname) => !BASE_SYSTEM_LIBRARIES.has(soname) && !soname.startsWith('libonnxruntime')).map((soname) => describeSystemLibrary(soname) ?? unknownLibrary(soname)), ...(needed.includes(cudnn.soname) ? [] : [cudnn])];
    }
    for (const lib of list) needs.push({ lib, neededBy: provider });
  }
  return needs;
}

function unknownLibrary(soname: string): SystemLibrary {
  return { soname, what: soname, fix: `install the package that provides ${soname} and put its folder on LD_LIBRARY_PATH`, when: 'load' };
}

function libraryReport(folder: string, inspection: Inspection, env: NodeJS.ProcessEnv): { found: CudaProviderStatus['foundLibraries'][number][]; missing: MissingLibrary[] } {
  const needs = neededBy(folder, inspection);
  const lookup = lookUpLibraries([...new Set(needs.map((n) => n.lib.soname))], env);
  const found: CudaProviderStatus['foundLibraries'][number][] = [];
  const missing: MissingLibrary[] = [];
  for (const { lib, neededBy: provider } of needs) {
    const at = lookup.found.get(lib.soname);
    if (at !== undefined) found.push({ soname: lib.soname, path: at, neededBy: provider });
    else missing.push({ ...lib, neededBy: provider, offPath: lookup.offPath.get(lib.soname) ?? null });
  }
  return { found, missing };
}

/** The libraries a provider library in `folder` needs and this machine lacks (sync: for error paths). */
export function missingProviderLibraries(folder: string, provider: ProviderFileName = CUDA_LIBRARY, env: NodeJS.ProcessEnv = process.env): MissingLibrary[] {
  return libraryReport(folder, inspectFolder(folder), env).missing.filter((lib) => lib.neededBy === provider);
}
