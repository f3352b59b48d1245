/**
 * The page's own files (view/page/: plain HTML, CSS and browser ES modules, no bundler, nothing from
 * another host), served by this process from the package's source folder, read once. Which files exist
 * is request-route.ts's fixed table; a URL never names a path.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The page's folder in the package (this file runs as dist/view/page-files.js). */
export const PAGE_FOLDER = fileURLToPath(new URL('../../view/page/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export interface PageFile {
  readonly bytes: Buffer;
  readonly type: string;
}

export class PageFiles {
  private readonly files = new Map<string, PageFile>();

  get(name: string): PageFile {
    let file = this.files.get(name);
    if (file === undefined) {
      const type = TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream';
      file = { bytes: readFileSync(join(PAGE_FOLDER, name)), type };
      this.files.set(name, file);
    }
    return file;
  }
}
