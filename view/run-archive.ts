/**
 * `GET /api/runs/:id/download`: the run folder as a .tar.gz stream, built from the files the run's
 * source gives (the coordinator's Files set: regular files of the folder, read without following links,
 * nothing outside it; coordinator/service/run-files.ts). Each entry is written from the bytes already
 * read, with a header of the `tar` package's own; nothing is opened again by path, so a link swapped
 * in meanwhile is never followed. Entries sit under one folder named for the run.
 */
import type { ServerResponse } from 'node:http';
import { createGzip } from 'node:zlib';
import { Header } from 'tar';

const BLOCK = 512;

export async function streamRunArchive(response: ServerResponse, runId: string, files: AsyncIterable<{ readonly name: string; readonly bytes: Buffer }>, onError: (error: Error) => void): Promise<void> {
  const iterator = files[Symbol.asyncIterator]();
  // The first file is read before the status goes out, so a folder that cannot be served is an error reply.
  let next: IteratorResult<{ readonly name: string; readonly bytes: Buffer }>;
  try {
    next = await iterator.next();
  } catch (error) {
    onError(error as Error);
    return;
  }
  response.writeHead(200, { 'Content-Type': 'application/gzip', 'Content-Disposition': `attachment; filename="${runId}.tar.gz"`, 'Cache-Control': 'no-store' });
  const gzip = createGzip();
  gzip.pipe(response);
  const put = async (chunk: Buffer) => {
    if (!gzip.write(chunk)) await new Promise((resolve) => gzip.once('drain', resolve));
  };
  const mtime = new Date();
  try {
    while (next.done !== true) {
      const { name, bytes } = next.value;
      const header = Buffer.alloc(BLOCK);
      new Header({ path: `${runId}/${name}`, mode: 0o644, size: bytes.length, mtime, type: 'File', uid: 0, gid: 0 }).encode(header, 0);
      await put(header);
      await put(bytes);
      const pad = (BLOCK - (bytes.length % BLOCK)) % BLOCK;
      if (pad > 0) await put(Buffer.alloc(pad));
      if (response.destroyed) return void (await iterator.return?.());
      next = await iterator.next();
    }
    await put(Buffer.alloc(2 * BLOCK));
    gzip.end();
  } catch (error) {
    // Half an archive is worse than none: the connection is cut, so the download fails visibly.
    onError(error as Error);
    gzip.destroy();
    response.destroy();
  }
}
