import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { repoRoot } from './support/repo-root.js';

/**
 * The folders' layering, lowest first (docs/architecture.md explains it). A file may import from its
 * own folder and from folders of lower layers only: never from a folder of its own layer or above.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'async'],
  ['files', 'random', 'samplers', 'world', 'security', 'metrics'],
  ['proto'],
  // NATS's events are the coordinator's messages (proto/coordinator-messages.ts), so cluster/ sits above proto/.
  ['search', 'report', 'cluster'],
  ['worker'],
  ['config'],
  // The live view's server and page: the coordinator serves it, `evosearch view` too (each gives it a RunSource).
  ['view'],
  ['coordinator'],
  ['cli'],
  ['bench'],
  ['test'],
];
const LAYER = new Map(LAYERS.flatMap((folders, layer) => folders.map((folder) => [folder, layer] as const)));

/** What the deterministic core may import besides itself: the command vocabulary, addressed randomness, the error model. */
const SEARCH_MAY_IMPORT = [/^proto\/commands\.ts$/, /^random\//, /^errors\//];
/** The clock, ambient randomness and the process: a search that read them would not replay. */
const SEARCH_FORBIDDEN_GLOBALS = /\b(Date\.now|new Date|performance\.now|Math\.random|setTimeout|setInterval|setImmediate|process\.)/;

interface SourceFile {
  readonly path: string;
  readonly text: string;
  /** Repository-relative paths of the files it imports, and the bare module specifiers. */
  readonly local: readonly string[];
  readonly packages: readonly string[];
}

function sourceFiles(): SourceFile[] {
  const root = repoRoot();
  const files: SourceFile[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(join(root, folder), { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'fixtures') walk(path);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const text = readFileSync(join(root, path), 'utf8');
        const local: string[] = [];
        const packages: string[] = [];
        for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
          const spec = match[1] ?? match[2]!;
          if (spec.startsWith('.')) local.push(normalize(join(dirname(path), spec)).replace(/\.js$/, '.ts'));
          else packages.push(spec);
        }
        files.push({ path, text, local, packages });
      }
    }
  };
  for (const folder of LAYER.keys()) walk(folder);
  return files;
}

const topFolder = (path: string) => path.split('/')[0]!;

describe('the architecture: the search core is fenced, and no folder imports one above it', () => {
  const files = sourceFiles();

  it('every source folder has a layer, and the scan found the code', () => {
    const root = repoRoot();
    const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { include: string[] };
    for (const folder of tsconfig.include) if (folder !== 'models') assert.ok(LAYER.has(folder), `${folder}/ is compiled but has no layer in this test (and docs/architecture.md)`);
    assert.ok(files.filter((f) => f.path.startsWith('search/')).length >= 10, 'search/ not found');
  });

  it('search/ imports only the command vocabulary, random/ and the error model: no I/O, clock, gRPC, NATS or onnxruntime', () => {
    const crossings: string[] = [];
    for (const file of files.filter((f) => f.path.startsWith('search/'))) {
      for (const target of file.local) if (!target.startsWith('search/') && !SEARCH_MAY_IMPORT.some((allowed) => allowed.test(target))) crossings.push(`${file.path} imports ${target}`);
      for (const spec of file.packages) crossings.push(`${file.path} imports the module '${spec}'`);
      const code = file.text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      const global = SEARCH_FORBIDDEN_GLOBALS.exec(code);
      if (global !== null) crossings.push(`${file.path} reads ${global[1]}`);
    }
    assert.deepEqual(crossings, [], 'the search core crossed its fence');
  });

  it('no file imports from a folder of its own layer or above', () => {
    const upward: string[] = [];
    for (const file of files) {
      const from = topFolder(file.path);
      for (const target of file.local) {
        const to = topFolder(target);
        if (to === from) continue;
        const ours = LAYER.get(from)!;
        const theirs = LAYER.get(to);
        if (theirs === undefined) continue; // models/, package.json: data, not layers
        if (theirs >= ours) upward.push(`${file.path} (${from}, layer ${ours}) imports ${target} (${to}, layer ${theirs})`);
      }
    }
    assert.deepEqual(upward, []);
  });

  it('no import cycle between files', () => {
    const graph = new Map(files.map((f) => [f.path, f.local.filter((t) => t !== f.path)]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (path: string) => {
      state.set(path, 'open');
      stack.push(path);
      for (const next of graph.get(path) ?? []) {
        if (!graph.has(next)) continue;
        if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
        else if (state.get(next) === undefined) visit(next);
      }
      stack.pop();
      state.set(path, 'done');
    };
    for (const path of graph.keys()) if (state.get(path) === undefined) visit(path);
    assert.deepEqual(cycles, []);
  });

  it('the checker itself catches an upward import and a fence crossing (it can fail)', () => {
    const from = LAYER.get('worker')!;
    assert.ok(LAYER.get('coordinator')! >= from, 'coordinator must sit above worker');
    assert.ok(!SEARCH_MAY_IMPORT.some((allowed) => allowed.test('proto/worker-client.ts')), 'the fence lets gRPC code in');
    assert.ok(SEARCH_FORBIDDEN_GLOBALS.test('const t = Date.now();'));
    assert.equal(relative('search', 'search/x.ts'), 'x.ts');
  });
});
