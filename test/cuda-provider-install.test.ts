/**
 * `evosearch install-cuda` and the module behind it, against real .tgz archives built here with the
 * tar package, and the real CLI as a child process: pinned and unpinned installs, refusals, damaged
 * archives, an unwritable target, leftovers of killed installs, kills at every step of the swap and at
 * random moments, --check, and the load-error explanations on onnxruntime's own texts. With the real
 * 179 MB npm package at /tmp/ortpkg, one test installs it through the npm source and checks the pins.
 *
 * Runs from dist/test (npm test) and from a compiled copy elsewhere: the repository is found from the
 * compiled file or the working folder, and the compiled tree is laid out the way bin/evosearch.js expects.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type ProviderModule = typeof import('../worker/runtime/cuda-provider/index.js');
type ElfModule = typeof import('../worker/runtime/cuda-provider/elf-needed.js');
type Tar = typeof import('tar');

const SHARED = 'libonnxruntime_providers_shared.so';
const CUDA = 'libonnxruntime_providers_cuda.so';
const TENSORRT = 'libonnxruntime_providers_tensorrt.so';
const MANIFEST = 'evosearch-cuda-provider.json';
const REAL_TARBALL = '/tmp/ortpkg/com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz';

/** The compiled tree this file belongs to: <repo>/dist, or an --outDir elsewhere. */
const compiledRoot = fileURLToPath(new URL('..', import.meta.url));

function findRepo(): string {
  for (const start of [compiledRoot, process.cwd()]) {
    for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
      const pkg = join(dir, 'package.json');
      if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'evosearch-cluster') return dir;
      if (path.dirname(dir) === dir) break;
    }
  }
  throw new Error(`no evosearch-cluster package.json above ${compiledRoot} or ${process.cwd()}`);
}

const repo = findRepo();
const scratch = mkdtempSync(join(tmpdir(), 'cuda-install-'));
// A child run as another user (the unwritable-target test, under root) must be able to read everything.
chmodSync(scratch, 0o755);

/**
 * Where bin/evosearch.js and the compiled modules are run from. Under <repo>/dist that is the repository
 * itself. A compiled copy elsewhere is copied into <scratch>/layout/dist beside a copy of bin/ and links
 * to proto/ and node_modules/, because compiled files find those one level above their tree.
 */
function runtimeRoot(): string {
  if (path.resolve(compiledRoot) === join(repo, 'dist')) return repo;
  const root = join(scratch, 'layout');
  mkdirSync(join(root, 'bin'), { recursive: true });
  cpSync(compiledRoot, join(root, 'dist'), { recursive: true, filter: (src) => path.basename(src) !== 'node_modules' || path.dirname(src) !== path.resolve(compiledRoot) });
  cpSync(join(repo, 'bin', 'evosearch.js'), join(root, 'bin', 'evosearch.js'));
  cpSync(join(repo, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(repo, 'proto'), join(root, 'proto'));
  symlinkSync(join(repo, 'node_modules'), join(root, 'node_modules'));
  for (const dir of [root, join(root, 'bin')]) chmodSync(dir, 0o755);
  return root;
}

const runtime = runtimeRoot();
const bin = join(runtime, 'bin', 'evosearch.js');
const tar = createRequire(join(repo, 'package.json'))('tar') as Tar;
let provider: ProviderModule;
let elf: ElfModule;

before(async () => {
  provider = (await import(pathToFileURL(join(runtime, 'dist', 'worker', 'runtime', 'cuda-provider', 'index.js')).href)) as ProviderModule;
  elf = (await import(pathToFileURL(join(runtime, 'dist', 'worker', 'runtime', 'cuda-provider', 'elf-needed.js')).href)) as ElfModule;
});

after(() => rmSync(scratch, { recursive: true, force: true }));

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function evosearch(args: readonly string[], options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: scratch, env: options.env ?? process.env, ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid } : {}), maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const e = error as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

let counter = 0;
function freshDir(name: string): string {
  const dir = join(scratch, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const sha256File = (file: string): string => sha256(readFileSync(file));

interface FakeBuild {
  readonly archive: string;
  readonly archiveSha256: string;
  readonly files: Readonly<Record<string, { size: number; sha256: string }>>;
}

/**
 * A .tgz holding provider files of random bytes, in the npm package's layout (package/Plugins/Linux/x64)
 * or onnxruntime's release layout (onnxruntime-linux-x64-gpu-<v>/lib), with some unrelated files around.
 */
async function fakeBuild(name: string, sizes: Readonly<Record<string, number>>, layout: 'npm' | 'release' = 'npm'): Promise<FakeBuild> {
  const src = freshDir(`src-${name}`);
  const top = layout === 'npm' ? 'package' : 'onnxruntime-linux-x64-gpu-1.29.0';
  const libDir = layout === 'npm' ? join(src, top, 'Plugins', 'Linux', 'x64') : join(src, top, 'lib');
  mkdirSync(libDir, { recursive: true });
  writeFileSync(join(src, top, 'README.md'), `fake provider build ${name}\n`);
  const files: Record<string, { size: number; sha256: string }> = {};
  for (const [file, size] of Object.entries(sizes)) {
    const data = randomBytes(size);
    writeFileSync(join(libDir, file), data);
    files[file] = { size, sha256: sha256(data) };
    if (layout === 'npm') writeFileSync(join(libDir, `${file}.meta`), 'fileFormatVersion: 2\n');
  }
  const archive = join(scratch, `${name}-${++counter}.tgz`);
  await tar.c({ gzip: true, file: archive, cwd: src, portable: true }, [top]);
  return { archive, archiveSha256: sha256File(archive), files };
}

const SMALL = { [SHARED]: 4096, [CUDA]: 300_000, [TENSORRT]: 20_000 };

function providerFiles(folder: string): string[] {
  return readdirSync(folder).sort();
}

function assertInstalled(folder: string, build: FakeBuild, names: readonly string[] = [SHARED, CUDA]): void {
  for (const name of names) {
    assert.equal(sha256File(join(folder, name)), build.files[name]!.sha256, `${name} in ${folder}`);
  }
  const manifest = JSON.parse(readFileSync(join(folder, MANIFEST), 'utf8'));
  assert.deepEqual(
    manifest.files.map((f: { name: string; sha256: string; size: number }) => [f.name, f.size, f.sha256]).sort(),
    names.map((n) => [n, build.files[n]!.size, build.files[n]!.sha256]).sort(),
  );
  assert.equal(manifest.archive.sha256, build.archiveSha256);
  assert.ok(!readdirSync(folder).some((n) => n.startsWith('.evosearch-cuda')), `no staging folder or lock left in ${folder}: ${readdirSync(folder)}`);
}

describe('install-cuda: archives and checks', () => {
  it('installs a good archive given its --archive-sha256, writes the manifest, and a second run changes nothing', async () => {
    const build = await fakeBuild('good', SMALL);
    const into = freshDir('good');
    const first = await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256, '--into', into]);
    assert.equal(first.code, 0, first.stderr);
    assertInstalled(into, build);
    assert.deepEqual(providerFiles(into), [MANIFEST, CUDA, SHARED].sort());
    assert.match(first.stdout, /^installed unpinned-[0-9a-f]{12} \(not a pinned build: accepted by its archive's sha256\) from /m);
    assert.match(first.stdout, new RegExp(`${CUDA}: 300,000 bytes, sha256 ${build.files[CUDA]!.sha256} recorded`));
    assert.match(first.stdout, new RegExp(`archive .*: [\\d,]+ bytes, sha256 ${build.archiveSha256}`));
    const manifest = JSON.parse(readFileSync(join(into, MANIFEST), 'utf8'));
    assert.equal(manifest.pinned, false);
    assert.deepEqual(manifest.source, { kind: 'path', path: build.archive });
    assert.ok(Date.now() - Date.parse(manifest.installedAt) < 60_000);
    assert.equal(manifest.files.find((f: { name: string }) => f.name === CUDA).archivePath, `package/Plugins/Linux/x64/${CUDA}`);

    const inodes = [SHARED, CUDA, MANIFEST].map((n) => statSync(join(into, n)).ino);
    const again = await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256, '--into', into]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^already installed: unpinned-[0-9a-f]{12} .*nothing to do$/m);
    assert.deepEqual([SHARED, CUDA, MANIFEST].map((n) => statSync(join(into, n)).ino), inodes, 'a no-op reinstall touches no file');
    assert.equal(readFileSync(join(into, MANIFEST), 'utf8'), JSON.stringify(manifest, null, 2) + '\n');
  });

  it("finds the files anywhere in the archive: onnxruntime's own release layout, with --tensorrt", async () => {
    const build = await fakeBuild('release', SMALL, 'release');
    const into = freshDir('release');
    const r = await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256.toUpperCase(), '--into', into, '--tensorrt']);
    assert.equal(r.code, 0, r.stderr);
    assertInstalled(into, build, [SHARED, CUDA, TENSORRT]);
    const manifest = JSON.parse(readFileSync(join(into, MANIFEST), 'utf8'));
    assert.equal(manifest.files.find((f: { name: string }) => f.name === CUDA).archivePath, `onnxruntime-linux-x64-gpu-1.29.0/lib/${CUDA}`);
  });

  it('refuses an archive whose sha256 is not --archive-sha256, and leaves the installed set as it was', async () => {
    const old = await fakeBuild('kept', SMALL);
    const other = await fakeBuild('other', SMALL);
    const into = freshDir('wrong-hash');
    assert.equal((await evosearch(['install-cuda', '--source', old.archive, '--archive-sha256', old.archiveSha256, '--into', into])).code, 0);
    const r = await evosearch(['install-cuda', '--source', other.archive, '--archive-sha256', old.archiveSha256, '--into', into]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${other.archive.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: has sha256 ${other.archiveSha256} .*but --archive-sha256 says ${old.archiveSha256}.*Nothing was installed`));
    assertInstalled(into, old);

    const empty = freshDir('wrong-hash-empty');
    const r2 = await evosearch(['install-cuda', '--source', other.archive, '--archive-sha256', 'ab'.repeat(32), '--into', empty]);
    assert.equal(r2.code, 2);
    assert.deepEqual(providerFiles(empty), [], 'nothing installed, no staging folder or lock left');

    const bad = await evosearch(['install-cuda', '--source', other.archive, '--archive-sha256', 'not-a-hash', '--into', empty]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--archive-sha256: "not-a-hash" is not a sha256 \(64 hex digits\)/);
  });

  it('refuses files that match no pinned build without --archive-sha256, naming the file, the expected and the actual hash', async () => {
    const build = await fakeBuild('unpinned', SMALL);
    const into = freshDir('unpinned');
    const r = await evosearch(['install-cuda', '--source', build.archive, '--into', into]);
    assert.equal(r.code, 2, r.stderr);
    const pinned = provider.DEFAULT_BUILD.files;
    const named = [SHARED, CUDA].find((n) => r.stderr.includes(`package/Plugins/Linux/x64/${n} has sha256 ${build.files[n]!.sha256}`));
    assert.ok(named, r.stderr);
    assert.match(r.stderr, new RegExp(`expects ${pinned[named as typeof SHARED].sha256} \\(${pinned[named as typeof SHARED].size} bytes\\)`));
    assert.match(r.stderr, /--archive-sha256 <hex>/);
    assert.deepEqual(providerFiles(into), []);
  });

  it('refuses a truncated archive, a corrupt one and a zip, and installs nothing', async () => {
    const build = await fakeBuild('truncated', { [SHARED]: 4096, [CUDA]: 2_000_000 });
    const into = freshDir('truncated');
    const cut = join(scratch, 'cut.tgz');
    cpSync(build.archive, cut);
    truncateSync(cut, Math.floor(statSync(cut).size / 2));
    const truncated = await evosearch(['install-cuda', '--source', cut, '--into', into]);
    assert.equal(truncated.code, 2, truncated.stderr);
    assert.match(truncated.stderr, /cut\.tgz: is not a readable \.tgz archive \(.*\): it is truncated, damaged or of another format; download it again/);

    const garbage = join(scratch, 'garbage.tgz');
    writeFileSync(garbage, randomBytes(10_000));
    const corrupt = await evosearch(['install-cuda', '--source', garbage, '--into', into]);
    assert.equal(corrupt.code, 2, corrupt.stderr);
    assert.match(corrupt.stderr, /garbage\.tgz: is not a readable \.tgz archive/);

    // A gzip stream intact but a tar body cut short inside the CUDA library.
    const rawTar = join(scratch, 'short.tar');
    const src = freshDir('short-src');
    writeFileSync(join(src, CUDA), randomBytes(100_000));
    writeFileSync(join(src, SHARED), randomBytes(1000));
    await tar.c({ file: rawTar, cwd: src, portable: true }, [SHARED, CUDA]);
    truncateSync(rawTar, 60_000);
    const short = await evosearch(['install-cuda', '--source', rawTar, '--archive-sha256', sha256File(rawTar), '--into', into]);
    assert.equal(short.code, 2, short.stderr);
    assert.match(short.stderr, /short\.tar: .*truncated/);

    const zip = join(scratch, 'Microsoft.ML.OnnxRuntime.Gpu.Linux.1.29.0.nupkg');
    writeFileSync(zip, Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), randomBytes(100)]));
    const nupkg = await evosearch(['install-cuda', '--source', zip, '--into', into]);
    assert.equal(nupkg.code, 2);
    assert.match(nupkg.stderr, /is a zip archive \(a NuGet \.nupkg\?\)/);

    const none = await evosearch(['install-cuda', '--source', join(scratch, 'no-such.tgz'), '--into', into]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no-such\.tgz: no such archive/);
    assert.deepEqual(providerFiles(into), []);
  });

  it('refuses an archive without the CUDA library, and --tensorrt on one without the TensorRT library', async () => {
    const noCuda = await fakeBuild('no-cuda', { [SHARED]: 4096 });
    const into = freshDir('no-cuda');
    const r = await evosearch(['install-cuda', '--source', noCuda.archive, '--archive-sha256', noCuda.archiveSha256, '--into', into]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`has no ${CUDA} in any of its folders \\(it has package/Plugins/Linux/x64/${SHARED}\\)`));
    assert.deepEqual(providerFiles(into), []);

    const noTrt = await fakeBuild('no-trt', { [SHARED]: 4096, [CUDA]: 10_000 });
    const r2 = await evosearch(['install-cuda', '--source', noTrt.archive, '--archive-sha256', noTrt.archiveSha256, '--into', into, '--tensorrt']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, new RegExp(`has no ${TENSORRT} .*or install without --tensorrt`));
    assert.deepEqual(providerFiles(into), []);
  });

  it('says so when the target folder is not writable (exit 3) and changes nothing', async () => {
    const build = await fakeBuild('readonly', SMALL);
    const into = freshDir('readonly');
    chmodSync(into, 0o555);
    // Root writes through any mode bits, so under root the CLI runs as nobody.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    try {
      const r = await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256, '--into', into], asUser);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, new RegExp(`${into}: cannot write here \\(EACCES.*\\); run the install as the user that owns this folder, or give a writable folder with --into`));
      assert.deepEqual(providerFiles(into), []);
    } finally {
      chmodSync(into, 0o755);
    }
  });

  it('clears a staging folder and a lock left by a killed install, then installs', async () => {
    const build = await fakeBuild('leftover', SMALL);
    const into = freshDir('leftover');
    const stale = join(into, '.evosearch-cuda-staging-12345-deadbeef');
    mkdirSync(stale);
    writeFileSync(join(stale, CUDA), randomBytes(1000));
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.on('close', resolve));
    writeFileSync(join(into, '.evosearch-cuda-install.lock'), String(dead.pid));
    const r = await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256, '--into', into]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed \.evosearch-cuda-staging-12345-deadbeef, left by an install that was stopped/);
    assertInstalled(into, build);
  });

  it('refuses to run beside a live install holding the lock (exit 3)', async () => {
    const build = await fakeBuild('locked', SMALL);
    const into = freshDir('locked');
    writeFileSync(join(into, '.evosearch-cuda-install.lock'), String(process.pid));
    const r = await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256, '--into', into]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, new RegExp(`another install \\(process ${process.pid}\\) is installing into this folder`));
    assert.ok(!existsSync(join(into, CUDA)));
  });
});

describe('install-cuda: never a half-installed provider', () => {
  const BIG = { [SHARED]: 8192, [CUDA]: 16 << 20 };
  let oldBuild: FakeBuild;
  let newBuild: FakeBuild;

  before(async () => {
    oldBuild = await fakeBuild('old', SMALL);
    newBuild = await fakeBuild('new', BIG);
  });

  /** Either no CUDA library, or one whose companions and manifest (if any) are of its own complete set. */
  function assertConsistent(folder: string, when: string): 'none' | 'old' | 'new' {
    if (!existsSync(join(folder, CUDA))) return 'none';
    const cuda = sha256File(join(folder, CUDA));
    const set = cuda === oldBuild.files[CUDA]!.sha256 ? oldBuild : cuda === newBuild.files[CUDA]!.sha256 ? newBuild : null;
    assert.ok(set, `${when}: the CUDA library is of neither build (a partial file?)`);
    assert.ok(existsSync(join(folder, SHARED)), `${when}: a CUDA library without ${SHARED}`);
    assert.equal(sha256File(join(folder, SHARED)), set.files[SHARED]!.sha256, `${when}: ${SHARED} of another build than the CUDA library`);
    if (existsSync(join(folder, MANIFEST))) {
      const manifest = JSON.parse(readFileSync(join(folder, MANIFEST), 'utf8'));
      for (const f of manifest.files as { name: string; sha256: string }[]) {
        assert.equal(sha256File(join(folder, f.name)), f.sha256, `${when}: ${f.name} is not what the manifest lists`);
      }
      assert.equal(manifest.archive.sha256, set.archiveSha256, `${when}: the manifest is of another build`);
    }
    return set === oldBuild ? 'old' : 'new';
  }

  async function installOld(folder: string): Promise<void> {
    const r = await evosearch(['install-cuda', '--source', oldBuild.archive, '--archive-sha256', oldBuild.archiveSha256, '--into', folder, '--tensorrt']);
    assert.equal(r.code, 0, r.stderr);
  }

  async function finishAndCheck(folder: string): Promise<void> {
    const r = await evosearch(['install-cuda', '--source', newBuild.archive, '--archive-sha256', newBuild.archiveSha256, '--into', folder]);
    assert.equal(r.code, 0, r.stderr);
    assertInstalled(folder, newBuild);
    assert.ok(!existsSync(join(folder, TENSORRT)), 'the old build\'s TensorRT library does not stay beside the new build');
  }

  it('a SIGKILL at each step of the swap leaves the old set, no provider, or the new set; the next run completes', async () => {
    const child = join(scratch, 'kill-at-step.mjs');
    const module = pathToFileURL(join(runtime, 'dist', 'worker', 'runtime', 'cuda-provider', 'index.js')).href;
    writeFileSync(
      child,
      `import { installCudaProvider } from ${JSON.stringify(module)};\n` +
        `const [source, folder, sha, stop] = process.argv.slice(2);\n` +
        `await installCudaProvider({ source, folder, archiveSha256: sha, onStep: (s) => { process.stdout.write(s + '\\n'); if (s === stop) process.kill(process.pid, 'SIGKILL'); } });\n`,
    );
    const steps = [`removed old ${CUDA}`, `removed old ${MANIFEST}`, `removed old ${TENSORRT}`, `moved ${SHARED}`, `moved ${CUDA}`, `moved ${MANIFEST}`];
    const outcomes: string[] = [];
    for (const stop of steps) {
      const folder = freshDir('step');
      await installOld(folder);
      const result = await new Promise<{ signal: NodeJS.Signals | null; stdout: string }>((resolve) => {
        execFile(process.execPath, [child, newBuild.archive, folder, newBuild.archiveSha256, stop], (error, stdout) => resolve({ signal: (error as { signal?: NodeJS.Signals } | null)?.signal ?? null, stdout }));
      });
      assert.equal(result.signal, 'SIGKILL', `the install reached step '${stop}' (steps seen: ${result.stdout.trim().split('\n').join(', ')})`);
      outcomes.push(`${stop} -> ${assertConsistent(folder, `killed after '${stop}'`)}`);
      assert.ok(readdirSync(folder).some((n) => n.startsWith('.evosearch-cuda-staging-')), 'the killed install left its staging folder');
      await finishAndCheck(folder);
    }
    assert.deepEqual(outcomes, [
      `removed old ${CUDA} -> none`,
      `removed old ${MANIFEST} -> none`,
      `removed old ${TENSORRT} -> none`,
      `moved ${SHARED} -> none`,
      `moved ${CUDA} -> new`,
      `moved ${MANIFEST} -> new`,
    ]);
  });

  it('the real CLI killed at random moments never leaves a CUDA library without its companions', async (t) => {
    const timing = freshDir('timing');
    await installOld(timing);
    const started = Date.now();
    const r = await evosearch(['install-cuda', '--source', newBuild.archive, '--archive-sha256', newBuild.archiveSha256, '--into', timing]);
    assert.equal(r.code, 0, r.stderr);
    const duration = Date.now() - started;
    const seen: string[] = [];
    // Spread over the install, from process start-up to just past its end, with some jitter.
    for (let i = 0; i < 6; i++) {
      const folder = freshDir('random-kill');
      await installOld(folder);
      const delay = Math.round(duration * (0.3 + 0.15 * i + 0.1 * Math.random()));
      const proc = spawn(process.execPath, [bin, 'install-cuda', '--source', newBuild.archive, '--archive-sha256', newBuild.archiveSha256, '--into', folder], { cwd: scratch, stdio: 'ignore' });
      const timer = setTimeout(() => proc.kill('SIGKILL'), delay);
      await new Promise((resolve) => proc.on('close', resolve));
      clearTimeout(timer);
      const state = assertConsistent(folder, `killed after ${delay} ms`);
      const midway = readdirSync(folder).some((n) => n.startsWith('.evosearch-cuda-staging-'));
      seen.push(`${delay} ms: ${state}${midway ? ' (staging left)' : ''}`);
      await finishAndCheck(folder);
    }
    t.diagnostic(`an install takes ${duration} ms; killed at ${seen.join(', ')}`);
  });
});

describe('install-cuda --check and the status', () => {
  it('--check on an empty folder exits 1 and names what is missing', async () => {
    const into = freshDir('check-empty');
    const r = await evosearch(['install-cuda', '--check', '--into', into]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, new RegExp(`CUDA provider in ${into}: not installed`));
    assert.match(r.stdout, new RegExp(`no ${CUDA} in ${into}: the CUDA provider is not installed; run npx evosearch install-cuda`));
    // What the pinned build will need is listed, found or not (this machine may have some of it).
    for (const lib of ['libcudart.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libcurand.so.10', 'libcudnn.so.9']) assert.ok(r.stdout.includes(lib), `${lib} in\n${r.stdout}`);
    assert.match(r.stdout, /^usable: no \(the provider is not installed\)$/m);
    assert.deepEqual(providerFiles(into), [], '--check writes nothing');
  });

  it('--check finds libraries on LD_LIBRARY_PATH, and detects changed files by size, and with --full-hash by sha256', async () => {
    const build = await fakeBuild('check', SMALL);
    const into = freshDir('check');
    assert.equal((await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256, '--into', into])).code, 0);
    const libs = freshDir('fake-libs');
    writeFileSync(join(libs, 'libcudnn.so.9'), 'fake');
    const env = { ...process.env, LD_LIBRARY_PATH: `/nonexistent:${libs}` };
    const ok = await evosearch(['install-cuda', '--check', '--into', into], { env });
    // A fake, non-ELF CUDA library needs nothing that its headers name; cuDNN 9 is always needed.
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, new RegExp(`found on this machine: .*libcudnn\\.so\\.9 \\(${join(libs, 'libcudnn.so.9')}\\)`));
    assert.match(ok.stdout, new RegExp(`${CUDA}: 300,000 bytes, size matches the manifest`));
    assert.match(ok.stdout, /^usable: yes$/m);

    const withoutCudnn = await evosearch(['install-cuda', '--check', '--into', into], { env: { ...process.env, LD_LIBRARY_PATH: '' } });
    if (!withoutCudnn.stdout.includes('libcudnn.so.9 (/')) {
      assert.equal(withoutCudnn.code, 1);
      assert.match(withoutCudnn.stdout, /libcudnn\.so\.9 \[opened when a session starts\]: cuDNN 9 for CUDA 13; install cuDNN 9 for CUDA 13 .* LD_LIBRARY_PATH/);
      assert.match(withoutCudnn.stdout, /^usable: no \(libcudnn\.so\.9 missing\)$/m);
    }

    // Same size, other bytes: only the full hash sees it.
    const data = readFileSync(join(into, SHARED));
    data[0] = data[0]! ^ 0xff;
    writeFileSync(join(into, SHARED), data);
    assert.equal((await evosearch(['install-cuda', '--check', '--into', into], { env })).code, 0);
    const full = await evosearch(['install-cuda', '--check', '--full-hash', '--into', into], { env });
    assert.equal(full.code, 1);
    assert.match(full.stdout, new RegExp(`${join(into, SHARED)} has sha256 ${sha256(data)}, but evosearch-cuda-provider.json says ${build.files[SHARED]!.sha256}: the file was changed or damaged; reinstall`));

    truncateSync(join(into, CUDA), 1000);
    const cut = await evosearch(['install-cuda', '--check', '--into', into], { env });
    assert.equal(cut.code, 1);
    assert.match(cut.stdout, new RegExp(`${join(into, CUDA)} is 1000 bytes, but evosearch-cuda-provider.json says 300000`));

    // A damaged install is reinstalled, not taken for "already installed".
    const again = await evosearch(['install-cuda', '--source', build.archive, '--archive-sha256', build.archiveSha256, '--into', into]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^installed /m);
    assertInstalled(into, build);
  });

  it('--check without --into looks at the onnxruntime-node that the CLI loads, and writes nothing there', async () => {
    const folder = realpathSync(join(repo, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64'));
    const before = readdirSync(folder).sort();
    const r = await evosearch(['install-cuda', '--check']);
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    assert.match(r.stdout, new RegExp(`CUDA provider in ${folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    assert.deepEqual(readdirSync(folder).sort(), before);
  });

  it('refuses flags that make no sense together, and other platforms', async () => {
    const r = await evosearch(['install-cuda', '--full-hash']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--full-hash: only applies to --check/);
    const r2 = await evosearch(['install-cuda', '--check', '--source', 'https://example.com/x.tgz']);
    assert.equal(r2.code, 2);
    assert.throws(() => provider.assertLinuxX64('darwin', 'arm64'), (e: Error) => e instanceof provider.CudaProviderError && e.kind === 'input' && /linux x64 only, and this machine is darwin arm64/.test(e.message));
    assert.throws(() => provider.assertLinuxX64('linux', 'arm64'), /linux arm64/);
    assert.doesNotThrow(() => provider.assertLinuxX64('linux', 'x64'));
    const url = await evosearch(['install-cuda', '--source', 'http://example.com/x.tgz', '--into', freshDir('url')]);
    assert.equal(url.code, 2);
    assert.match(url.stderr, /only https:\/\/ URLs are fetched/);
  });
});

describe('install-cuda sources: npm pack and URLs', () => {
  /** An `npm` on PATH that records its arguments and "packs" a given file (or fails like a 404). */
  function fakeNpm(tarball: string | null): { env: NodeJS.ProcessEnv; args: string } {
    const dir = freshDir('fake-npm');
    const args = join(dir, 'args.txt');
    writeFileSync(
      join(dir, 'npm'),
      '#!/bin/sh\n' +
        `echo "$@" > ${JSON.stringify(args)}\n` +
        (tarball === null
          ? 'echo "npm error code E404" >&2\necho "npm error 404 Not Found - GET https://registry.example/com.github.asus4.onnxruntime.linux-x64-gpu" >&2\nexit 1\n'
          : `dest=""; prev=""\nfor a in "$@"; do [ "$prev" = "--pack-destination" ] && dest="$a"; prev="$a"; done\ncp ${JSON.stringify(tarball)} "$dest/"\n`),
      { mode: 0o755 },
    );
    return { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, args };
  }

  it('runs npm pack for the pinned package, and says so when npm fails (exit 3)', async () => {
    const npm = fakeNpm(null);
    const into = freshDir('npm-fail');
    const r = await evosearch(['install-cuda', '--into', into], { env: npm.env });
    assert.equal(r.code, 3, r.stderr);
    const spec = `${provider.DEFAULT_BUILD.npm.name}@${provider.DEFAULT_BUILD.npm.version}`;
    assert.match(readFileSync(npm.args, 'utf8'), new RegExp(`^pack ${spec.replace(/\./g, '\\.')} --pack-destination ${into}/\\.evosearch-cuda-staging-\\S+ --ignore-scripts$`, 'm'));
    assert.match(r.stderr, new RegExp(`npm pack ${spec.replace(/\./g, '\\.')}: failed with exit code 1 \\(npm error code E404 \\| npm error 404 Not Found`));
    assert.deepEqual(providerFiles(into), []);
  });

  it('refuses a tarball from npm whose integrity is not the pinned one', async () => {
    const build = await fakeBuild('npm-other', SMALL);
    const npm = fakeNpm(build.archive);
    const into = freshDir('npm-other');
    const r = await evosearch(['install-cuda', '--into', into], { env: npm.env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`gave a tarball with integrity sha512-\\S+ \\(\\d+ bytes\\), but the package is pinned at ${provider.DEFAULT_BUILD.npm.integrity.replace(/[+/=]/g, '\\$&')}`));
    assert.deepEqual(providerFiles(into), []);
  });

  it('downloads an archive from a URL (localhost over http), and says so when the server fails', async () => {
    const build = await fakeBuild('url', SMALL);
    const body = readFileSync(build.archive);
    const server: Server = createServer((req, res) => {
      if (req.url === '/good.tgz') return void res.writeHead(200, { 'content-length': body.length }).end(body);
      if (req.url === '/cut.tgz') {
        res.writeHead(200, { 'content-length': body.length });
        res.write(body.subarray(0, 1000));
        return void setTimeout(() => res.destroy(), 50);
      }
      res.writeHead(404).end('not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const into = freshDir('url');
      const ok = await evosearch(['install-cuda', '--source', `${base}/good.tgz`, '--archive-sha256', build.archiveSha256, '--into', into]);
      assert.equal(ok.code, 0, ok.stderr);
      assertInstalled(into, build);
      assert.match(ok.stdout, new RegExp(`from ${base}/good\\.tgz`));
      const missing = await evosearch(['install-cuda', '--source', `${base}/missing.tgz`, '--into', freshDir('url-404')]);
      assert.equal(missing.code, 3);
      assert.match(missing.stderr, /missing\.tgz: answered HTTP 404/);
      const cutInto = freshDir('url-cut');
      const cut = await evosearch(['install-cuda', '--source', `${base}/cut.tgz`, '--into', cutInto]);
      assert.equal(cut.code, 3, cut.stderr);
      assert.match(cut.stderr, /cut\.tgz: the download (broke off|ended after)/);
      assert.deepEqual(providerFiles(cutInto), []);
    } finally {
      server.close();
    }
  });

  it('installs the real npm package through the npm source and checks the pins', { skip: existsSync(REAL_TARBALL) ? false : `the real 179 MB package is not at ${REAL_TARBALL} (npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 --pack-destination /tmp/ortpkg to run this test)` }, async () => {
    const npm = fakeNpm(REAL_TARBALL);
    const into = freshDir('real');
    const r = await evosearch(['install-cuda', '--into', into, '--tensorrt'], { env: npm.env });
    assert.equal(r.code, 0, r.stderr);
    const build = provider.DEFAULT_BUILD;
    assert.match(r.stdout, new RegExp(`^installed ${build.id} \\(pinned\\) from npm package ${build.npm.name.replace(/\./g, '\\.')}@0\\.4\\.9$`, 'm'));
    for (const name of [SHARED, CUDA, TENSORRT] as const) {
      const file = join(into, name);
      assert.equal(statSync(file).size, build.files[name].size, name);
      assert.equal(sha256File(file), build.files[name].sha256, name);
      assert.match(r.stdout, new RegExp(`${name}: ${build.files[name].size.toLocaleString('en-US')} bytes, sha256 ${build.files[name].sha256} matches the pin`));
    }
    const manifest = JSON.parse(readFileSync(join(into, MANIFEST), 'utf8'));
    assert.equal(manifest.build, build.id);
    assert.equal(manifest.pinned, true);
    assert.deepEqual(manifest.source, { kind: 'npm', package: `${build.npm.name}@${build.npm.version}` });
    assert.equal(manifest.archive.size, build.npm.size);

    // The table's load-time needs are the real NEEDED entries (less glibc and libstdc++).
    const base = new Set(['libc.so.6', 'libm.so.6', 'libdl.so.2', 'librt.so.1', 'libpthread.so.0', 'libstdc++.so.6', 'libgcc_s.so.1', 'ld-linux-x86-64.so.2']);
    for (const name of [CUDA, TENSORRT] as const) {
      const needed = elf.readNeededLibraries(join(into, name))!.filter((lib) => !base.has(lib)).sort();
      const table = build.needs[name].filter((lib) => lib.when === 'load').map((lib) => lib.soname);
      const dlopened = build.needs[name].filter((lib) => lib.when !== 'load').map((lib) => lib.soname);
      assert.deepEqual(table.sort(), needed.filter((lib) => !dlopened.includes(lib)).sort(), `${name}: NEEDED ${needed.join(', ')}`);
    }

    // Installed: a second run through npm does not even fetch the package.
    rmSync(npm.args);
    const again = await evosearch(['install-cuda', '--into', into, '--tensorrt'], { env: npm.env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^already installed: /m);
    assert.ok(!existsSync(npm.args), 'npm was not run for an installed build');

    const check = await evosearch(['install-cuda', '--check', '--full-hash', '--into', into]);
    assert.match(check.stdout, new RegExp(`CUDA provider in ${into}: ${build.id} \\(pinned\\), from npm package`));
    assert.match(check.stdout, new RegExp(`${CUDA}: 229,780,440 bytes, sha256 matches the manifest`));
    assert.equal(check.code, check.stdout.includes('usable: yes') ? 0 : 1);
  });
});

describe('explainCudaProviderLoadError', () => {
  const nativeLog = (folder: string, error: string) =>
    `\u001b[1;31m2026-12-01 08:59:35.554697790 [E:onnxruntime:onnxruntime-node, provider_bridge_ort.cc:2146 Create] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1988 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library ${folder}/libonnxruntime_providers_cuda.so with error: ${error}\n\u001b[m`;

  it('names a missing CUDA library and how to get it', () => {
    const text = 'Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory';
    const message = provider.explainCudaProviderLoadError(text)!;
    assert.match(message, /^the CUDA provider cannot load: libcublasLt\.so\.13 \(CUDA 13's cuBLASLt, part of cuBLAS\) is not found on this machine; install CUDA 13's cuBLAS \(apt package libcublas-13-0, .*\) and put its lib folder on LD_LIBRARY_PATH/);
    assert.match(message, /npx evosearch install-cuda --check/);
    assert.equal(provider.explainCudaProviderLoadError(nativeLog('/x/bin/napi-v6/linux/x64', 'libcublasLt.so.13: cannot open shared object file: No such file or directory')), message);
    assert.match(provider.explainCudaProviderLoadError(nativeLog('/x', 'libcudnn.so.9: cannot open shared object file: No such file or directory'))!, /libcudnn\.so\.9 \(cuDNN 9 for CUDA 13\) is not found.*install cuDNN 9 for CUDA 13/);
    assert.match(provider.explainCudaProviderLoadError(nativeLog('/x', 'libnvfoo.so.3: cannot open shared object file: No such file or directory'))!, /libnvfoo\.so\.3 is not found on this machine; install the package that provides libnvfoo\.so\.3/);
  });

  it('says to run install-cuda when the provider itself is missing', () => {
    const folder = '/srv/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64';
    const message = provider.explainCudaProviderLoadError(nativeLog(folder, `${folder}/libonnxruntime_providers_cuda.so: cannot open shared object file: No such file or directory`))!;
    assert.equal(message, `onnxruntime's CUDA provider is not installed: ${folder} has no libonnxruntime_providers_cuda.so. Install it with: npx evosearch install-cuda`);
    const shared = provider.explainCudaProviderLoadError(`Failed to load library ${folder}/libonnxruntime_providers_shared.so with error: ${folder}/libonnxruntime_providers_shared.so: cannot open shared object file: No such file or directory`)!;
    assert.match(shared, /has no libonnxruntime_providers_shared\.so\. Install it with: npx evosearch install-cuda$/);
    const trt = provider.explainCudaProviderLoadError(`Failed to load library ${folder}/libonnxruntime_providers_tensorrt.so with error: ${folder}/libonnxruntime_providers_tensorrt.so: cannot open shared object file: No such file or directory`)!;
    assert.match(trt, /TensorRT provider is not installed: .* npx evosearch install-cuda --tensorrt$/);
    assert.match(provider.explainCudaProviderLoadError(`Failed to load library ${folder}/libonnxruntime_providers_tensorrt.so with error: libcublas.so.13: cannot open shared object file: No such file or directory`)!, /^the TensorRT provider cannot load: libcublas\.so\.13/);
  });

  it("explains onnxruntime-node's short exception by looking at the folder and the loader's path", async () => {
    const empty = freshDir('explain-empty');
    assert.equal(
      provider.explainCudaProviderLoadError('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library', { folder: empty }),
      `onnxruntime's CUDA provider is not installed: ${empty} has no libonnxruntime_providers_cuda.so. Install it with: npx evosearch install-cuda`,
    );
    // Pinned-build files (by the manifest) whose libraries all sit on LD_LIBRARY_PATH.
    const folder = freshDir('explain-installed');
    writeFileSync(join(folder, SHARED), 'x');
    writeFileSync(join(folder, CUDA), 'x');
    const build = provider.DEFAULT_BUILD;
    writeFileSync(join(folder, MANIFEST), JSON.stringify({ format: 1, build: build.id, pinned: true, source: { kind: 'npm', package: 'x' }, archive: { name: 'x', size: 1, sha256: 'x' }, files: [], installedAt: new Date().toISOString() }));
    const libs = freshDir('explain-libs');
    for (const lib of build.needs[CUDA]) writeFileSync(join(libs, lib.soname), 'x');
    const env = { ...process.env, LD_LIBRARY_PATH: libs };
    assert.match(provider.explainCudaProviderLoadError('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library', { folder, env })!, /though they and the CUDA libraries they need are there/);
    rmSync(join(libs, 'libcurand.so.10'));
    const status = await provider.cudaProviderStatus({ folder, env });
    const missing = status.missingLibraries.filter((lib) => lib.neededBy === CUDA && lib.when !== 'optional').map((lib) => lib.soname);
    const message = provider.explainCudaProviderLoadError('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library', { folder, env })!;
    if (missing.length > 0) assert.match(message, new RegExp(`^the CUDA provider cannot load: ${missing[0]!.replace(/\./g, '\\.')} `));
    else assert.match(message, /though they and the CUDA libraries they need are there/, 'this machine has its own libcurand.so.10');
  });

  it('recognises driver, cuDNN and symbol failures, and leaves other errors alone', () => {
    assert.match(provider.explainCudaProviderLoadError('CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version ; GPU=0')!, /NVIDIA driver new enough for CUDA 13 \(580 or later\)/);
    assert.match(provider.explainCudaProviderLoadError('cuDNN library was not found')!, /libcudnn\.so\.9/);
    assert.match(provider.explainCudaProviderLoadError('Failed to load library /x/libonnxruntime_providers_cuda.so with error: /lib/libcublasLt.so.13: version `libcublasLt.so.13\' not found (required by /x/libonnxruntime_providers_cuda.so)')!, /libonnxruntime_providers_cuda\.so needs symbol version libcublasLt\.so\.13/);
    assert.equal(provider.explainCudaProviderLoadError('Load model from m.onnx failed: Protobuf parsing failed.'), null);
    assert.equal(provider.explainCudaProviderLoadError(''), null);
  });
});
