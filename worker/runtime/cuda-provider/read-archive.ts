import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { CudaProviderError, systemMessage } from './errors.js';
import type { ProviderFileName } from './known-builds.js';

export interface ArchiveDigest {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
  /** npm's integrity string of the same bytes (sha512, base64). */
  readonly integrity: string;
}

export interface ExtractedFile {
  readonly name: ProviderFileName;
  readonly archivePath: string;
  readonly size: number;
  readonly sha256: string;
  /** Where it was written. */
  readonly file: string;
}

/** Size, sha256 and npm integrity of `file`, in one read. */
export async function digestArchive(file: string): Promise<ArchiveDigest> {
  const sha256 = createHash('sha256');
  const sha512 = createHash('sha512');
  let size = 0;
  try {
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      sha256.update(chunk);
      sha512.update(chunk);
      size += chunk.length;
    }
  } catch (error) {
    throw new CudaProviderError('io', file, `cannot read the archive (${systemMessage(error)})`, { cause: error });
  }
  return { name: path.basename(file), size, sha256: sha256.digest('hex'), integrity: `sha512-${sha512.digest('base64')}` };
}

/** sha256 of a file on disk (installed or staged provider library). */
export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

const REGULAR_FILE = new Set(['File', 'OldFile', 'ContiguousFile']);

/**
 * Writes the archive's copies of `wanted` into `folder`, hashing them on the way. The files are looked
 * for by name in every folder of the archive: the npm package keeps them under package/Plugins/Linux/x64/,
 * onnxruntime's own release under onnxruntime-linux-x64-gpu-<version>/lib/.
 */
export async function extractProviderFiles(archive: string, wanted: readonly ProviderFileName[], folder: string): Promise<Map<ProviderFileName, ExtractedFile>> {
  refuseZip(archive);
  const names = new Set<string>(wanted);
  const extracted = new Map<ProviderFileName, ExtractedFile>();
  const writes: Promise<void>[] = [];
  const outs: ReturnType<typeof createWriteStream>[] = [];
  // An entry cut short by a truncated archive never ends: its file must still be closed.
  const settle = async (): Promise<void> => {
    for (const out of outs) if (!out.writableEnded) out.destroy();
    await Promise.all(writes);
  };
  const seen = new Map<string, string>();
  let writeError: unknown = null;
  try {
    await tar.t({
      file: archive,
      // A truncated body or a broken gzip stream must fail the install, not yield a short file.
      strict: true,
      noResume: true,
      onReadEntry: (entry) => {
        const name = path.posix.basename(entry.path);
        if (!names.has(name) || !REGULAR_FILE.has(entry.type)) {
          entry.resume();
          return;
        }
        const earlier = seen.get(name);
        if (earlier !== undefined) {
          writeError ??= new CudaProviderError('input', archive, `holds ${name} twice (${earlier} and ${entry.path}), so which build it is cannot be told; give an archive of one provider build`);
          entry.resume();
          return;
        }
        seen.set(name, entry.path);
        const target = path.join(folder, name);
        const hash = createHash('sha256');
        const declared = entry.size;
        let size = 0;
        const out = createWriteStream(target, { flags: 'wx', mode: 0o755 });
        outs.push(out);
        let failed = false;
        writes.push(
          new Promise<void>((resolve) => {
            out.on('error', (error) => {
              // Keep reading to the end so the parser finishes; the install fails after it.
              failed = true;
              writeError ??= new CudaProviderError('io', folder, `cannot write ${name} here (${systemMessage(error)}); free space or give a writable folder with --into`, { cause: error });
              entry.resume();
              resolve();
            });
            out.on('close', () => resolve());
          }),
        );
        entry.on('data', (chunk: Buffer) => {
          if (failed) return;
          hash.update(chunk);
          size += chunk.length;
          if (!out.write(chunk)) {
            entry.pause();
            out.once('drain', () => entry.resume());
          }
        });
        entry.on('end', () => {
          if (failed) return;
          out.end();
          if (size !== declared) writeError ??= new CudaProviderError('input', archive, `${entry.path} ends after ${size} of its ${declared} bytes: the archive is truncated; download it again`);
          extracted.set(name as ProviderFileName, { name: name as ProviderFileName, archivePath: entry.path, size, sha256: hash.digest('hex'), file: target });
        });
        entry.resume();
      },
    });
  } catch (error) {
    await settle();
    if (writeError !== null) throw writeError;
    throw new CudaProviderError('input', archive, `is not a readable .tgz archive (${describeTarError(error)}): it is truncated, damaged or of another format; download it again`, { cause: error });
  }
  await settle();
  if (writeError !== null) throw writeError;
  return extracted;
}

function describeTarError(error: unknown): string {
  const e = error as { tarCode?: string; code?: string; message?: string };
  const code = e.tarCode ?? e.code;
  return code !== undefined && !String(e.message).includes(code) ? `${code}: ${e.message}` : String(e.message ?? error);
}

/** NuGet packages (.nupkg) are zip files; say so instead of "unrecognized archive format". */
function refuseZip(archive: string): void {
  let fd: number;
  try {
    fd = openSync(archive, 'r');
  } catch (error) {
    throw new CudaProviderError('io', archive, `cannot open the archive (${systemMessage(error)})`, { cause: error });
  }
  const magic = Buffer.alloc(4);
  try {
    readSync(fd, magic, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (magic.readUInt32BE(0) === 0x504b0304) {
    throw new CudaProviderError('input', archive, 'is a zip archive (a NuGet .nupkg?); install-cuda reads .tgz archives: the npm package (--source npm), or onnxruntime\'s release onnxruntime-linux-x64-gpu-<version>.tgz');
  }
}
