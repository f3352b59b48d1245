import { readFileSync } from 'node:fs';
import { writeFileDurableSync } from '../../../files/durable-write.js';
import path from 'node:path';
import type { ProviderFileName } from './known-builds.js';

/** Written last by an install, so its presence says the files it lists are the complete set. */
export const MANIFEST_FILE = 'evosearch-cuda-provider.json';

export type ProviderSource = { readonly kind: 'npm'; readonly package: string } | { readonly kind: 'path'; readonly path: string } | { readonly kind: 'url'; readonly url: string };

export interface InstalledFile {
  readonly name: ProviderFileName;
  readonly size: number;
  readonly sha256: string;
  /** Where it was inside the archive. */
  readonly archivePath: string;
}

export interface ProviderManifest {
  readonly format: 1;
  /** A known build's id, or `unpinned-<archive sha256 prefix>` for an archive accepted by its own hash. */
  readonly build: string;
  readonly pinned: boolean;
  readonly source: ProviderSource;
  readonly archive: { readonly name: string; readonly size: number; readonly sha256: string };
  readonly files: readonly InstalledFile[];
  readonly installedAt: string;
}

/** The manifest in `folder`; null when there is none or it cannot be read as one (the caller reports that). */
export function readManifest(folder: string): ProviderManifest | null {
  let text: string;
  try {
    text = readFileSync(path.join(folder, MANIFEST_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const value = JSON.parse(text) as Partial<ProviderManifest>;
    if (value.format !== 1 || typeof value.build !== 'string' || !Array.isArray(value.files)) return null;
    return value as ProviderManifest;
  } catch {
    return null;
  }
}

/** Writes the manifest to `file` durably (files/durable-write.ts), so that a rename of it is a complete manifest or none. */
export function writeManifestFile(file: string, manifest: ProviderManifest): void {
  writeFileDurableSync(file, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
}
