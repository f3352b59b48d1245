import { hostname } from 'node:os';
import { acquireOwnerLock } from '../../../files/owner-lock.js';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { fetchArchive, parseSource } from './archive-source.js';
import { CudaProviderError, systemMessage } from './errors.js';
import { CUDA_LIBRARY, DEFAULT_BUILD, INSTALL_ORDER, KNOWN_BUILDS, SHARED_LIBRARY, TENSORRT_LIBRARY, type KnownBuild, type ProviderFileName } from './known-builds.js';
import { MANIFEST_FILE, readManifest, writeManifestFile, type InstalledFile, type ProviderManifest, type ProviderSource } from './manifest.js';
import { assertLinuxX64, defaultProviderFolder, onnxruntimeNodeVersionOf } from './provider-folder.js';
import { digestArchive, extractProviderFiles, sha256OfFile, type ArchiveDigest, type ExtractedFile } from './read-archive.js';

const STAGING_PREFIX = '.evosearch-cuda-staging-';
const LOCK_FILE = '.evosearch-cuda-install.lock';

export interface InstallOptions {
  /** 'npm' (default), a path to a .tgz, or an https:// URL. */
  readonly source?: string;
  /** The archive's own sha256: accepts files that match no pinned build, and is checked instead of the pins. */
  readonly archiveSha256?: string;
  /** Default: onnxruntime-node's bin/napi-v6/linux/x64. */
  readonly folder?: string;
  /** Also install libonnxruntime_providers_tensorrt.so. */
  readonly tensorrt?: boolean;
  /** Progress lines for a person (fetching, verifying). */
  readonly report?: (line: string) => void;
  /** Called after each step that changes the target folder; tests stop the install there. */
  readonly onStep?: (step: string) => void;
}

export interface InstallResult {
  readonly folder: string;
  /** 'unchanged': the same build's files were already in place and intact. */
  readonly outcome: 'installed' | 'unchanged';
  readonly manifest: ProviderManifest;
  /** Files of an earlier install removed because the new set does not include them. */
  readonly removed: readonly string[];
  /** Stale staging folders of interrupted installs that this run cleared. */
  readonly clearedStaging: readonly string[];
}

/**
 * Installs the provider libraries into `folder`, all or nothing: the files are verified in a staging
 * folder inside the target (one filesystem, so each move is an atomic rename), then moved into place
 * with the CUDA library last and the manifest after it. A kill at any point leaves either the old set,
 * no CUDA library at all, or the complete new set; the next run clears what was left.
 */
export async function installCudaProvider(options: InstallOptions = {}): Promise<InstallResult> {
  const report = options.report ?? (() => {});
  const step = options.onStep ?? (() => {});
  assertLinuxX64();
  const build = DEFAULT_BUILD;
  const source = parseSource(options.source ?? 'npm', build);
  const archiveSha256 = options.archiveSha256 === undefined ? undefined : parseSha256(options.archiveSha256);
  const folder = path.resolve(options.folder ?? defaultProviderFolder());
  const wanted: ProviderFileName[] = options.tensorrt ? [SHARED_LIBRARY, CUDA_LIBRARY, TENSORRT_LIBRARY] : [SHARED_LIBRARY, CUDA_LIBRARY];

  const created = ensureFolder(folder);
  let succeeded = false;
  const release = takeLock(folder);
  try {
    const clearedStaging = clearStaging(folder);
    const current = await installedSet(folder, wanted);
    const unchanged = (manifest: ProviderManifest): InstallResult => {
      succeeded = true;
      return { folder, outcome: 'unchanged', manifest, removed: [], clearedStaging };
    };
    if (source.kind === 'npm') {
      checkOnnxruntimeVersion(folder, build);
      // The pinned build is known before the download: an intact install of it needs no 180 MB fetch.
      if (current !== null && current.build === build.id && sameFiles(current, pinnedFiles(build, wanted))) return unchanged(current);
    }
    const staging = path.join(folder, `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      mkdirSync(staging);
    } catch (error) {
      throw notWritable(folder, error);
    }
    try {
      const archive = await fetchArchive(source, staging, report);
      report(`checking ${path.basename(archive)}…`);
      const digest = await digestArchive(archive);
      checkArchive(archive, digest, source, build, archiveSha256);
      // The archive the intact install came from: nothing to extract.
      if (current !== null && current.archive.sha256 === digest.sha256) return unchanged(current);
      const extracted = await extractProviderFiles(archive, wanted, staging);
      const missing = wanted.filter((name) => !extracted.has(name));
      if (missing.length > 0) {
        const found = [...extracted.values()].map((f) => f.archivePath);
        throw new CudaProviderError('input', archive, `has no ${missing.join(' and ')} in any of its folders${found.length ? ` (it has ${found.join(', ')})` : ''}; give the Linux x64 GPU build of onnxruntime (the npm package, or onnxruntime-linux-x64-gpu-<version>.tgz)${missing.includes(TENSORRT_LIBRARY) && missing.length === 1 ? ', or install without --tensorrt' : ''}`);
      }
      const files = wanted.map((name) => extracted.get(name)!);
      const pinned = matchPinnedBuild(files);
      if (pinned === null && archiveSha256 === undefined) throw noPinMatch(archive, files, build);
      if (pinned !== null) checkOnnxruntimeVersion(folder, pinned);
      const buildId = pinned?.id ?? `unpinned-${digest.sha256.slice(0, 12)}`;
      if (current !== null && current.build === buildId && sameFiles(current, files)) return unchanged(current);
      const kept = options.tensorrt ? null : keptTensorrt(folder, buildId);
      const manifest: ProviderManifest = {
        format: 1,
        build: buildId,
        pinned: pinned !== null,
        source,
        archive: { name: digest.name, size: digest.size, sha256: digest.sha256 },
        files: [...files.map(({ name, size, sha256, archivePath }) => ({ name, size, sha256, archivePath })), ...(kept ? [kept] : [])],
        installedAt: new Date().toISOString(),
      };
      const stale: ProviderFileName[] = !options.tensorrt && kept === null && existsSync(path.join(folder, TENSORRT_LIBRARY)) ? [TENSORRT_LIBRARY] : [];
      report(`installing into ${folder}…`);
      swapIn(folder, staging, files, manifest, stale, step);
      succeeded = true;
      return { folder, outcome: 'installed', manifest, removed: stale, clearedStaging };
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  } finally {
    release();
    // A folder made for --into and left empty by a refusal is not left behind.
    if (created && !succeeded) {
      try {
        rmdirSync(folder);
      } catch {
        // Not empty after all: keep it.
      }
    }
  }
}

/**
 * Moves the verified files into place. The old CUDA library and manifest go first, so that from then on
 * until the new CUDA library arrives the folder holds no provider rather than a mixed one.
 */
function swapIn(folder: string, staging: string, files: readonly ExtractedFile[], manifest: ProviderManifest, stale: readonly ProviderFileName[], step: (s: string) => void): void {
  let touched = false;
  try {
    for (const file of files) syncFile(file.file);
    writeManifestFile(path.join(staging, MANIFEST_FILE), manifest);
    for (const name of [CUDA_LIBRARY, MANIFEST_FILE, ...stale]) {
      if (!existsSync(path.join(folder, name))) continue;
      unlinkSync(path.join(folder, name));
      touched = true;
      step(`removed old ${name}`);
    }
    for (const name of INSTALL_ORDER) {
      const file = files.find((f) => f.name === name);
      if (file === undefined) continue;
      renameSync(file.file, path.join(folder, name));
      touched = true;
      step(`moved ${name}`);
    }
    syncFolder(folder);
    renameSync(path.join(staging, MANIFEST_FILE), path.join(folder, MANIFEST_FILE));
    step(`moved ${MANIFEST_FILE}`);
    syncFolder(folder);
  } catch (error) {
    if (!touched) throw notWritable(folder, error);
    throw new CudaProviderError('io', folder, `the install stopped while moving files into place (${systemMessage(error)}); the old CUDA library is already removed, so no provider is installed here now: fix the cause and run the install again`, { cause: error });
  }
}

/**
 * An installed TensorRT library of the same build, intact, stays when an install without --tensorrt
 * replaces the rest; any other would be loaded with a bridge library of another build.
 */
function keptTensorrt(folder: string, buildId: string): InstalledFile | null {
  const file = path.join(folder, TENSORRT_LIBRARY);
  const old = readManifest(folder);
  const listed = old?.files.find((f) => f.name === TENSORRT_LIBRARY);
  if (old === null || listed === undefined || old.build !== buildId || !existsSync(file)) return null;
  return createHash('sha256').update(readFileSync(file)).digest('hex') === listed.sha256 ? listed : null;
}

/** The manifest of what is installed, when its files for `wanted` are all there with the sha256 it lists. */
async function installedSet(folder: string, wanted: readonly ProviderFileName[]): Promise<ProviderManifest | null> {
  const manifest = readManifest(folder);
  if (manifest === null) return null;
  for (const name of wanted) {
    const listed = manifest.files.find((f) => f.name === name);
    const file = path.join(folder, name);
    if (listed === undefined || !existsSync(file) || statSync(file).size !== listed.size) return null;
    if ((await sha256OfFile(file)) !== listed.sha256) return null;
  }
  return manifest;
}

function sameFiles(manifest: ProviderManifest, files: readonly { name: string; size: number; sha256: string }[]): boolean {
  return files.every((f) => manifest.files.some((m) => m.name === f.name && m.size === f.size && m.sha256 === f.sha256));
}

function pinnedFiles(build: KnownBuild, wanted: readonly ProviderFileName[]): { name: string; size: number; sha256: string }[] {
  return wanted.map((name) => ({ name, ...build.files[name] }));
}

function matchPinnedBuild(files: readonly ExtractedFile[]): KnownBuild | null {
  return KNOWN_BUILDS.find((build) => files.every((f) => build.files[f.name].size === f.size && build.files[f.name].sha256 === f.sha256)) ?? null;
}

function noPinMatch(archive: string, files: readonly ExtractedFile[], build: KnownBuild): CudaProviderError {
  const off = files.find((f) => build.files[f.name].sha256 !== f.sha256 || build.files[f.name].size !== f.size)!;
  const pin = build.files[off.name];
  return new CudaProviderError(
    'input',
    archive,
    `${off.archivePath} has sha256 ${off.sha256} (${off.size} bytes), but the pinned build ${build.id} expects ${pin.sha256} (${pin.size} bytes): the archive holds another build. ` +
      `If you trust it (e.g. onnxruntime's own release), give the archive's sha256 from its release page with --archive-sha256 <hex> to install it unpinned; nothing was installed`,
  );
}

function checkArchive(archive: string, digest: ArchiveDigest, source: ProviderSource, build: KnownBuild, archiveSha256: string | undefined): void {
  if (archiveSha256 !== undefined && digest.sha256 !== archiveSha256) {
    throw new CudaProviderError('input', archive, `has sha256 ${digest.sha256} (${digest.size} bytes), but --archive-sha256 says ${archiveSha256}: the archive is damaged or is another file; download it again, or check the hash on its release page. Nothing was installed`);
  }
  if (source.kind === 'npm' && digest.integrity !== build.npm.integrity) {
    throw new CudaProviderError('input', `npm pack ${source.package}`, `gave a tarball with integrity ${digest.integrity} (${digest.size} bytes), but the package is pinned at ${build.npm.integrity} (${build.npm.size} bytes): the registry serves other bytes under this version; check the registry setting, or download ${build.npm.tarball} and give its path with --source`);
  }
}

function parseSha256(value: string): string {
  const hex = value.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new CudaProviderError('input', '--archive-sha256', `${JSON.stringify(value)} is not a sha256 (64 hex digits); copy it from the archive's release page, or compute it with sha256sum`);
  return hex;
}

/** Provider libraries of one onnxruntime version do not load into another's libonnxruntime.so. */
function checkOnnxruntimeVersion(folder: string, build: KnownBuild): void {
  const version = onnxruntimeNodeVersionOf(folder);
  if (version !== null && version !== build.onnxruntimeVersion) {
    throw new CudaProviderError('input', folder, `belongs to onnxruntime-node ${version}, but the provider build ${build.id} is onnxruntime ${build.onnxruntimeVersion}'s; provider libraries only load into the onnxruntime they were built with: install onnxruntime-node@${build.onnxruntimeVersion} (npm ci installs the version package.json pins)`);
  }
}

/** Makes the folder if need be; true when it was made here. */
function ensureFolder(folder: string): boolean {
  if (existsSync(folder)) {
    if (!statSync(folder).isDirectory()) throw new CudaProviderError('input', folder, 'is not a folder; give a folder with --into');
    return false;
  }
  try {
    mkdirSync(folder, { recursive: true });
  } catch (error) {
    throw notWritable(folder, error);
  }
  return true;
}

function notWritable(folder: string, error: unknown): CudaProviderError {
  return new CudaProviderError('io', folder, `cannot write here (${systemMessage(error)}); run the install as the user that owns this folder, or give a writable folder with --into. Nothing was changed`, { cause: error });
}

/**
 * One install per folder at a time: two would rename files of different builds into one set. The lock
 * names its process, so a lock left by a killed install is taken over rather than blocking forever.
 */
function takeLock(folder: string): () => void {
  const lock = path.join(folder, LOCK_FILE);
  try {
    return acquireOwnerLock(lock, (owner) => new CudaProviderError('io', folder, `another install (process ${owner.pid}${owner.host !== hostname() ? ` on ${owner.host}` : ''}) is installing into this folder; wait for it to finish, or delete ${lock} if no such process runs`));
  } catch (error) {
    if (error instanceof CudaProviderError) throw error;
    throw notWritable(folder, error);
  }
}

/** Staging folders of installs that were killed: only one install holds the lock, so none is live. */
function clearStaging(folder: string): string[] {
  const stale = readdirSync(folder).filter((name) => name.startsWith(STAGING_PREFIX));
  for (const name of stale) rmSync(path.join(folder, name), { recursive: true, force: true });
  return stale;
}

function syncFile(file: string): void {
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A rename survives a power loss only once its folder is synced. */
function syncFolder(folder: string): void {
  try {
    syncFile(folder);
  } catch {
    // Some filesystems refuse fsync on a folder; the renames still happened.
  }
}
