/**
 * A digest of the compiled CLI: sha256 over every .js file under a dist/ folder (its path and bytes, in
 * path order), leaving out dist/test and dist/bench, which the image does not hold.
 *
 *   node deploy/container/dist-digest.mjs dist
 *
 * The Containerfile writes it into the image (/opt/evosearch/dist-digest) and
 * test/container-cluster.test.ts computes it over this checkout's dist/: tsc's output is the same for the
 * same sources, so equal digests mean the image runs this checkout's code, and a different one that the
 * image is older (or newer) than the sources, which the test says instead of comparing answers of two
 * different programs.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const root = process.argv[2];
if (root === undefined) {
  process.stderr.write('usage: node dist-digest.mjs <dist folder>\n');
  process.exit(2);
}
const files = readdirSync(root, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile() && entry.name.endsWith('.js'))
  .map((entry) => relative(root, join(entry.parentPath ?? entry.path, entry.name)).split(sep).join('/'))
  .filter((path) => !path.startsWith('test/') && !path.startsWith('bench/'))
  .sort();
const hash = createHash('sha256');
for (const path of files) hash.update(`${path}\0`).update(readFileSync(join(root, path))).update('\0');
process.stdout.write(`sha256:${hash.digest('hex')} ${files.length} files\n`);
