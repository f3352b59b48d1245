/**
 * Input files and output folders of `evosearch run`, through the real command: a prompts file is
 * checked whole before any search (every bad line named with file, line and column; binary and
 * non-UTF-8 content described, not echoed), a prompt the model cannot make is refused at plan time,
 * and an `--out` that cannot hold a run is one line naming the folder, what is wrong and what to do,
 * before any model opens (never a raw EEXIST / EACCES text, never a hang under /proc).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, statfsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './support/repo-root.js';

const root = repoRoot();
const bin = join(root, 'bin', 'evosearch.js');
const tinySd = join(root, 'models', 'bundles', 'tiny-sd');
const tinyVideo = join(root, 'models', 'bundles', 'tiny-video');

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  readonly killed: boolean;
}

/** `node bin/evosearch.js ...args`, killed after `timeoutMs` (a hang shows as killed). */
function evosearch(args: readonly string[], options: { timeoutMs?: number; uid?: number; gid?: number } = {}): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { cwd: root, timeout: options.timeoutMs ?? 60_000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid }) },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: number | string; killed?: boolean }) | null;
        resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, stdout, stderr, ms: Date.now() - started, killed: e?.killed === true });
      },
    );
  });
}

const RUN_SD = ['run', '--model', tinySd, '--budget-nfe', '100', '--no-progress'];
const RUN_GMM = ['run', '--model', 'analytic:gmm', '--budget-nfe', '1000', '--seed', '1', '--no-progress'];

/** Only printable ASCII, tabs and newlines: nothing of a binary file reached the terminal. */
const PRINTABLE = /^[\x20-\x7e\n\t…]*$/;

describe('prompts files are checked whole before any search', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'input-files-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('every bad line is named with file, line and column, and no prompt runs', async () => {
    const file = join(dir, 'mixed.txt');
    await writeFile(file, ['a red circle', 'a red blob', '# a comment', '  two blue squares moving left', 'three red circle', 'a green triangle above a blue square'].join('\n'));
    const out = join(dir, 'mixed-out');
    const r = await evosearch([...RUN_SD, '--prompts', file, '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /prompts file .*mixed\.txt: 3 of 5 prompts cannot run, so nothing was run/);
    assert.match(r.stderr, /mixed\.txt:2:7: unknown word "blob"/);
    assert.match(r.stderr, /mixed\.txt:4:20: asks for motion \("moving left"\), but the model '.*tiny-sd' makes still images, not videos/);
    assert.match(r.stderr, /mixed\.txt:5:11: unexpected word "circle" .*expected a plural shape noun/);
    assert.match(r.stderr, /takes still prompts/);
    assert.doesNotMatch(r.stdout, /\[1\/5\]/, 'the first prompt did not start');
    assert.ok(!existsSync(out), 'nothing was written: no prompt ran, not even the good first one');
  });

  it('a binary file is described, not echoed', async () => {
    const file = join(dir, 'picture.png');
    const noise = Buffer.alloc(1024);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 73 + 41) % 256;
    await writeFile(file, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]), Buffer.from('IHDR'), noise]));
    const r = await evosearch([...RUN_SD, '--prompts', file, '--out', join(dir, 'png-out')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /prompts file .*picture\.png: looks like a PNG image, not text \(it starts with "\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR…"/);
    assert.ok(r.stderr.length < 400, `a short message, not the file: ${r.stderr.length} characters`);
    assert.match(r.stderr, PRINTABLE);
  });

  it('a file that is not UTF-8 names the line, the column and the byte', async () => {
    const file = join(dir, 'latin1.txt');
    await writeFile(file, Buffer.from('a red circle\ncaf\xe9 au lait\n', 'latin1'));
    const r = await evosearch([...RUN_SD, '--prompts', file, '--out', join(dir, 'latin-out')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /latin1\.txt: is not UTF-8 text: line 2, column 4 has the byte "\\xe9"; that line reads "caf\\xe9 au lait"; save the file as UTF-8/);
    assert.match(r.stderr, PRINTABLE);
  });

  it('empty files, comment-only files and too-long lines are refused clearly', async () => {
    const empty = join(dir, 'empty.txt');
    await writeFile(empty, '');
    const e = await evosearch([...RUN_SD, '--prompts', empty]);
    assert.equal(e.code, 2, e.stderr);
    assert.match(e.stderr, /prompts file .*empty\.txt: is empty; write one prompt per line/);

    const long = join(dir, 'long.txt');
    await writeFile(long, `a red circle\n${'x'.repeat(1500)}\na blue \x1b[31msquare\n`);
    const l = await evosearch([...RUN_SD, '--prompts', long, '--out', join(dir, 'long-out')]);
    assert.equal(l.code, 2, l.stderr);
    assert.match(l.stderr, /long\.txt:2:1: the prompt is 1500 characters long; a prompt is at most 1000/);
    assert.match(l.stderr, /long\.txt:3:8: a control character "\\x1b" is in the prompt "a blue \\x1b\[31msquare"/);
    assert.ok(!l.stderr.includes('xxxxxxxxxx'), 'the long line is not echoed');
    assert.ok(!existsSync(join(dir, 'long-out')));
  });
});

describe('a prompt the model cannot make is refused at plan time', () => {
  it('a motion prompt on an image model says the model makes images and what prompts it takes', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'motion-')), 'run');
    const r = await evosearch(['run', '--model', tinySd, '--prompt', 'a red circle moving left', '--out', out, '--no-progress']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /prompt "a red circle moving left" asks for motion \("moving left"\), but the model '.*tiny-sd' makes still images, not videos; it takes still prompts: one group/);
    assert.doesNotMatch(r.stderr, /shape|decoder|worker/, 'no tensor shapes, no worker');
    assert.ok(!existsSync(out), 'refused before the run folder or any model');
    const planned = await evosearch(['plan', '--model', tinySd, '--prompt', 'a red circle moving left']);
    assert.equal(planned.code, 2, 'evosearch plan makes the same check');
    assert.match(planned.stderr, /asks for motion \("moving left"\), but the model '.*tiny-sd' makes still images/);
  });

  it('a still prompt on a video model says the model makes videos and takes motion prompts', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'still-')), 'run');
    const r = await evosearch(['run', '--model', tinyVideo, '--prompt', 'a red circle', '--out', out, '--no-progress']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /prompt "a red circle" has no motion .*makes videos \(8 frames\); it takes motion prompts only: .*"moving left\|right\|up\|down"/);
    assert.ok(!existsSync(out));
  });
});

describe('--out problems are one line naming the folder, what is wrong and what to do', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'out-folder-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('a file in the way', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a folder\n');
    const at = await evosearch([...RUN_GMM, '--out', file]);
    assert.equal(at.code, 2, at.stderr);
    assert.equal(at.stderr, `evosearch: --out ${file}: is a file, not a folder; choose another --out, or move it away\n`);
    const inside = await evosearch([...RUN_GMM, '--out', join(file, 'run')]);
    assert.equal(inside.code, 2, inside.stderr);
    assert.equal(inside.stderr, `evosearch: --out ${join(file, 'run')}: ${file} is a file, not a folder, so no folder can be made inside it; choose another --out, or move ${file} away\n`);
  });

  it('a folder this user cannot write', async (t) => {
    const locked = join(dir, 'locked');
    await mkdir(locked);
    // Root writes anywhere: run the command as nobody then; otherwise take the write bit away.
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(locked, 0o555);
    else chmodSync(dir, 0o755);
    const as = asRoot ? { uid: 65534, gid: 65534 } : {};
    try {
      const r = await evosearch([...RUN_GMM, '--out', locked], as);
      if (asRoot && /EACCES|Cannot find module|permission denied, open '.*\.js'/.test(r.stderr) && !r.stderr.includes('--out')) return t.skip('nobody cannot read the repository here');
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, new RegExp(`^evosearch: --out ${locked}: no permission to write a file in it \\(running as [^)]+\\); choose a folder you can write.*, or change the permissions of ${locked}\\n$`));
      const deeper = await evosearch([...RUN_GMM, '--out', join(locked, 'a', 'b')], as);
      assert.equal(deeper.code, 3, deeper.stderr);
      assert.match(deeper.stderr, new RegExp(`^evosearch: --out ${join(locked, 'a', 'b')}: no permission to create ${join(locked, 'a')} `));
      assert.doesNotMatch(r.stderr + deeper.stderr, /EACCES|EPERM/);
      assert.deepEqual(readdirSync(locked), [], 'nothing left behind');
    } finally {
      chmodSync(locked, 0o755);
    }
  });

  for (const special of ['/proc', '/sys']) {
    it(`a folder under ${special} is refused at once, not waited on`, async (t) => {
      let isSpecial = false;
      try {
        isSpecial = [0x9fa0, 0x62656572].includes(statfsSync(special).type);
      } catch {
        // not Linux
      }
      if (!isSpecial) return t.skip(`${special} is no kernel filesystem here`);
      const r = await evosearch([...RUN_GMM, '--out', `${special}/evosearch-test`], { timeoutMs: 30_000 });
      assert.ok(!r.killed, `it hung: killed after ${r.ms} ms`);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^evosearch: --out ${special}/evosearch-test: ${special} is a (proc|sysfs) filesystem .*not storage: no run folder can be made there; choose a folder on a disk \\(such as --out runs/evosearch-test\\)\\n$`));
    });
  }
});
