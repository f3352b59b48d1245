/**
 * A model's build: what a coordinator compares to know that every worker computes the same function.
 * For a bundle, a sha256 over every file's path and bytes (two exports of the "same" model that differ
 * in one weight are different builds); for an analytic model, over its spec.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { bundlePath } from './models/load-model.js';

async function filesUnder(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort();
}

/** A file's bytes into the hash, streamed: a real denoiser's weights (SD 2.1: 3.5 GB) are past what one Buffer holds. */
async function hashFile(hash: Hash, file: string): Promise<void> {
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 2 ** 20 })) hash.update(chunk as Buffer);
}

export async function modelBuild(spec: string): Promise<string> {
  const hash = createHash('sha256');
  const folder = bundlePath(spec);
  if (folder === null) {
    hash.update(`spec\0${spec}`);
  } else {
    for (const file of await filesUnder(folder)) {
      hash.update(`file\0${relative(folder, file)}\0`);
      await hashFile(hash, file);
    }
  }
  return `sha256:${hash.digest('hex')}`;
}
