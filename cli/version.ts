import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `evosearch --version`: this package's version, and the runtime pieces a bug report needs. */
export function versionText(): string {
  // dist/cli/version.js and cli/version.ts both sit two folders below the package root.
  const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { version: string };
  const own = read(join(root, 'package.json')).version;
  let ort = 'not installed';
  try {
    ort = read(join(root, 'node_modules', 'onnxruntime-node', 'package.json')).version;
  } catch {
    // An install without onnxruntime-node still reports its own version.
  }
  return `evosearch ${own} (node ${process.version}, onnxruntime-node ${ort})`;
}
