import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CudaProviderError, systemMessage } from './errors.js';
import type { KnownBuild } from './known-builds.js';
import type { ProviderSource } from './manifest.js';

/** What `--source` names, before anything is fetched. */
export function parseSource(source: string, build: KnownBuild): ProviderSource {
  if (source === 'npm') return { kind: 'npm', package: `${build.npm.name}@${build.npm.version}` };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    let url: URL;
    try {
      url = new URL(source);
    } catch {
      throw new CudaProviderError('input', '--source', `${JSON.stringify(source)} is not a URL; give npm, a path to a .tgz, or an https:// URL`);
    }
    // Plain http only to this machine (a local mirror, the tests): the archive is code that will run.
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
      throw new CudaProviderError('input', '--source', `${JSON.stringify(source)}: only https:// URLs are fetched (http:// only from localhost); give npm, a path to a .tgz, or an https:// URL`);
    }
    return { kind: 'url', url: url.href };
  }
  return { kind: 'path', path: path.resolve(source) };
}

export function describeSource(source: ProviderSource): string {
  if (source.kind === 'npm') return `npm package ${source.package}`;
  if (source.kind === 'url') return source.url;
  return source.path;
}

/**
 * The archive file for `source`: a local path as it is, or a download into `folder` (the staging folder,
 * so that a download left by a killed install is removed with it).
 */
export async function fetchArchive(source: ProviderSource, folder: string, report: (line: string) => void): Promise<string> {
  if (source.kind === 'path') {
    let isFile: boolean;
    try {
      isFile = statSync(source.path).isFile();
    } catch (error) {
      throw new CudaProviderError('input', source.path, `no such archive (${systemMessage(error)}); give the path of the .tgz, or --source npm`, { cause: error });
    }
    if (!isFile) throw new CudaProviderError('input', source.path, 'is not a file; give the path of the .tgz archive itself');
    return source.path;
  }
  if (source.kind === 'npm') return npmPack(source.package, folder, report);
  return download(source.url, folder, report);
}

/**
 * `npm pack <package>` as a child process, so that the user's registry, proxy, certificate and auth
 * settings (.npmrc, npm_config_*) apply exactly as they do to `npm ci`.
 */
async function npmPack(spec: string, folder: string, report: (line: string) => void): Promise<string> {
  report(`fetching ${spec} with npm pack (about 180 MB)…`);
  const stderr: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('npm', ['pack', spec, '--pack-destination', folder, '--ignore-scripts'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.setEncoding('utf8').on('data', (text: string) => stderr.push(text));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve(exitCode));
  }).catch((error: unknown) => {
    throw new CudaProviderError('io', 'npm', `cannot run npm (${systemMessage(error)}); put npm on PATH, or download the package's tarball yourself and give its path with --source`, { cause: error });
  });
  if (code !== 0) {
    const said = stderr.join('').split('\n').filter((line) => /npm (error|ERR!)/.test(line)).slice(0, 4).join(' | ');
    throw new CudaProviderError('io', `npm pack ${spec}`, `failed with exit code ${code}${said ? ` (${said})` : ''}; check the network and the npm registry settings, or download the tarball elsewhere and give its path with --source`);
  }
  const tarballs = readdirSync(folder).filter((name) => name.endsWith('.tgz'));
  if (tarballs.length !== 1) throw new CudaProviderError('io', `npm pack ${spec}`, `left ${tarballs.length} .tgz files in ${folder} instead of one; give the tarball's path with --source`);
  return path.join(folder, tarballs[0]!);
}

/** Streams the archive to a file: it is 180 MB, which is not held in memory. */
async function download(url: string, folder: string, report: (line: string) => void): Promise<string> {
  report(`downloading ${url}…`);
  const name = path.posix.basename(new URL(url).pathname) || 'archive.tgz';
  const file = path.join(folder, name.endsWith('.tgz') || name.endsWith('.tar.gz') ? name : `${name}.tgz`);
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow' });
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    throw new CudaProviderError('io', url, `cannot be fetched (${systemMessage(cause ?? error)}); Node's fetch does not use HTTP(S)_PROXY: download the archive another way and give its path with --source, or use --source npm`, { cause: error });
  }
  if (!response.ok || response.body === null) {
    throw new CudaProviderError('io', url, `answered HTTP ${response.status} ${response.statusText}; check the URL (a release asset's download link), or download the archive another way and give its path with --source`);
  }
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  try {
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), createWriteStream(file, { flags: 'wx' }));
  } catch (error) {
    throw new CudaProviderError('io', url, `the download broke off (${systemMessage(error)}); run the install again`, { cause: error });
  }
  const got = statSync(file).size;
  if (Number.isFinite(declared) && got !== declared) throw new CudaProviderError('io', url, `the download ended after ${got} of ${declared} bytes; run the install again`);
  return file;
}
