/**
 * Checkpoint manifests after a crash: any readable manifest is used, newest first; unusable ones are
 * skipped with a warning naming the file and why; only a manifest of another checkpoint version stops a
 * resume; with none usable the error names every file tried. And the writer never leaves a moment
 * without a usable manifest: checked at every file-system step of a replacement, and by SIGKILLing a
 * process that appends rounds in a loop.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs, { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CheckpointError,
  CheckpointVersionError,
  CheckpointWriter,
  MANIFEST_FILE,
  PREVIOUS_MANIFEST_FILE,
  readCheckpoint,
  type CheckpointManifest,
} from '../coordinator/checkpoint/checkpoint-store.js';
import { repoRoot } from './support/repo-root.js';

const execFileAsync = promisify(execFile);
const bin = () => join(repoRoot(), 'bin', 'evosearch.js');
const RUN = ['run', '--budget-nfe', '60000', '--seed', '4', '--no-progress'];

interface RecordFile {
  best: unknown;
  spent: { nfe: number };
  candidates: { parents: unknown; reward: unknown; evaluations: unknown }[];
}

function decisions(record: RecordFile) {
  return { best: record.best, nfe: record.spent.nfe, candidates: record.candidates.map((c) => ({ parents: c.parents, reward: c.reward, evaluations: c.evaluations })) };
}

async function recordOf(folder: string) {
  return decisions(JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as RecordFile);
}

function roundsIn(folder: string): number {
  try {
    return (JSON.parse(readFileSync(join(folder, MANIFEST_FILE), 'utf8')) as { rounds: number }).rounds;
  } catch {
    return 0;
  }
}

/** A run folder as kill -9 leaves it: a real run killed once its checkpoint has `rounds` rounds (so checkpoint.prev.json exists). */
async function killedRun(folder: string, rounds = 2): Promise<void> {
  const child = spawn(process.execPath, [bin(), ...RUN, '--out', folder], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  while (roundsIn(folder) < rounds && child.exitCode === null) await sleep(2);
  const killed = child.exitCode === null && child.kill('SIGKILL');
  await exited;
  assert.ok(killed, 'the run finished before it could be killed');
  assert.ok(!existsSync(join(folder, 'record.json')) && existsSync(join(folder, PREVIOUS_MANIFEST_FILE)), 'a killed run with two manifests');
}

async function resume(folder: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return execFileAsync(process.execPath, [bin(), 'resume', folder, '--no-progress']).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

/** Deterministic bytes that are no JSON (a seeded generator, so a failure can be repeated). */
function garbage(length: number, seed: number): Buffer {
  let state = seed;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (state = (state * 1103515245 + 12345) % 2 ** 31) >> 16;
  out[0] = 0x7b; // '{': starts like JSON, goes wrong after
  return out;
}

/** Each way checkpoint.json can be left unusable, with what the warning must say about it. */
const DAMAGE: readonly { readonly name: string; readonly damage: (text: string) => Buffer | null; readonly says: RegExp }[] = [
  { name: 'empty', damage: () => Buffer.alloc(0), says: /checkpoint\.json: empty \(0 bytes\)/ },
  { name: '{}', damage: () => Buffer.from('{}'), says: /checkpoint\.json: not a checkpoint manifest \(an empty object\)/ },
  { name: 'truncated', damage: (text) => Buffer.from(text.slice(0, text.length >> 1)), says: /checkpoint\.json: not readable JSON \(.*truncated/ },
  { name: 'garbage', damage: (text) => garbage(text.length, 7), says: /checkpoint\.json: not readable JSON/ },
  { name: 'zeros (a power loss before the data reached the disk)', damage: (text) => Buffer.alloc(text.length), says: /checkpoint\.json: holds no data \(\d+ bytes, all zeros or blanks\)/ },
  { name: 'null', damage: () => Buffer.from('null'), says: /checkpoint\.json: not a checkpoint manifest \(JSON null, not an object\)/ },
  { name: 'one digit changed (fails its checksum)', damage: (text) => Buffer.from(text.replace(/"rounds":(\d+)/, (_, n: string) => `"rounds":${Number(n) + 1}`)), says: /checkpoint\.json: checksum mismatch/ },
  { name: 'missing', damage: () => null, says: /checkpoint\.json: missing/ },
];

describe('checkpoint manifests: any readable one is used, newest first', () => {
  it('checkpoint.json empty, {}, truncated, garbage, zeros, null, failing its checksum or missing, checkpoint.prev.json intact: resume warns naming the file and why, and gives the uninterrupted answer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manifest-recovery-'));
    try {
      await execFileAsync(process.execPath, [bin(), ...RUN, '--out', join(dir, 'reference')]);
      const expected = await recordOf(join(dir, 'reference'));
      for (const [i, { name, damage, says }] of DAMAGE.entries()) {
        const folder = join(dir, `damaged-${i}`);
        await killedRun(folder);
        const current = join(folder, MANIFEST_FILE);
        const previousRounds = (JSON.parse(readFileSync(join(folder, PREVIOUS_MANIFEST_FILE), 'utf8')) as CheckpointManifest).rounds;
        const damaged = damage(readFileSync(current, 'utf8'));
        if (damaged === null) await rm(current);
        else writeFileSync(current, damaged);

        const loaded = readCheckpoint(folder);
        assert.equal(loaded.file, join(folder, PREVIOUS_MANIFEST_FILE), name);
        assert.equal(loaded.manifest.rounds, previousRounds, name);
        assert.match(loaded.warning ?? '', says, name);
        const resumed = await resume(folder);
        assert.equal(resumed.code, 0, `${name}: ${resumed.stderr}`);
        assert.match(resumed.stderr, /warning: .*resuming from the previous checkpoint \(checkpoint\.prev\.json/, name);
        assert.match(resumed.stderr, says, name);
        assert.match(resumed.stdout, new RegExp(`after round ${previousRounds}:`), name);
        assert.deepEqual(await recordOf(folder), expected, `${name}: the resumed run's answer is the uninterrupted run's`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with no usable manifest the error names every file tried and why; only a manifest of another version is a version error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manifest-none-'));
    try {
      const folder = join(dir, 'run');
      await killedRun(folder);
      const current = join(folder, MANIFEST_FILE);
      const previous = join(folder, PREVIOUS_MANIFEST_FILE);
      const good = readFileSync(current, 'utf8');

      writeFileSync(current, '{}');
      writeFileSync(previous, good.slice(0, 100));
      assert.throws(
        () => readCheckpoint(folder),
        (e: unknown) => e instanceof CheckpointError && !(e instanceof CheckpointVersionError) && e.message.includes(`${current}: not a checkpoint manifest (an empty object)`) && e.message.includes(`${previous}: not readable JSON`),
      );
      const failed = await resume(folder);
      assert.equal(failed.code, 3, failed.stderr);
      assert.match(failed.stderr, /no usable checkpoint; tried .*checkpoint\.json: not a checkpoint manifest \(an empty object\); .*checkpoint\.prev\.json: not readable JSON/);
      assert.doesNotMatch(failed.stderr, /version|release/);

      await rm(current);
      writeFileSync(previous, '');
      const none = await resume(folder);
      assert.equal(none.code, 3, none.stderr);
      assert.match(none.stderr, /checkpoint\.json: missing; .*checkpoint\.prev\.json: empty \(0 bytes\)/);

      // A bare version number is damage, not another release's checkpoint: skipped for the previous manifest.
      writeFileSync(current, '{"version":3}');
      writeFileSync(previous, good);
      assert.match(readCheckpoint(folder).warning ?? '', /checkpoint\.json: not a checkpoint manifest \(version 3, but no runId\)/);

      // Valid, but truly of another checkpoint version (1 is unkeyed, 2 keyed: 3 is a later release's): refused, not skipped for an older manifest.
      writeFileSync(current, JSON.stringify({ ...(JSON.parse(good) as object), version: 3 }));
      writeFileSync(previous, good);
      assert.throws(() => readCheckpoint(folder), (e: unknown) => e instanceof CheckpointVersionError && /checkpoint version 3, this evosearch reads versions 1 \(unkeyed\) and 2 \(written with a cluster key\)/.test(e.message));
      const versioned = await resume(folder);
      assert.equal(versioned.code, 3);
      assert.match(versioned.stderr, /checkpoint\.json: checkpoint version 3, this evosearch reads versions 1 \(unkeyed\) and 2 \(written with a cluster key\): resume it with the release that wrote it/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Runs `body` with every call that changes a name or a file's content in the file system followed by
 * `check()`: a kill can stop a process between any two such calls, so `check` sees every state a kill
 * can leave. Node's builtin modules' named exports follow their objects after syncBuiltinESMExports.
 */
async function atEveryStep(check: (after: string) => void, body: () => Promise<void>): Promise<number> {
  const promises = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const sync = fs as unknown as Record<string, (...args: unknown[]) => unknown>;
  const asyncNames = ['rename', 'link', 'unlink', 'rm', 'writeFile', 'appendFile', 'truncate', 'copyFile', 'open'];
  const syncNames = ['renameSync', 'linkSync', 'unlinkSync', 'rmSync', 'writeFileSync', 'appendFileSync', 'truncateSync', 'copyFileSync', 'openSync', 'ftruncateSync'];
  const saved = new Map<string, unknown>();
  let steps = 0;
  // check() reads files itself: its own calls are not steps.
  let checking = false;
  const after = (name: string, args: unknown[]) => {
    if (checking) return;
    steps += 1;
    checking = true;
    try {
      check(`${name}(${args.filter((a) => typeof a === 'string').join(', ')})`);
    } finally {
      checking = false;
    }
  };
  for (const name of asyncNames) {
    const original = promises[name]!;
    saved.set(`p.${name}`, original);
    promises[name] = async (...args: unknown[]) => {
      const result = await original(...args);
      after(name, args);
      return result;
    };
  }
  for (const name of syncNames) {
    const original = sync[name]!;
    saved.set(name, original);
    sync[name] = (...args: unknown[]) => {
      const result = original(...args);
      after(name, args);
      return result;
    };
  }
  syncBuiltinESMExports();
  try {
    await body();
  } finally {
    for (const name of asyncNames) promises[name] = saved.get(`p.${name}`) as (...args: unknown[]) => Promise<unknown>;
    for (const name of syncNames) sync[name] = saved.get(name) as (...args: unknown[]) => unknown;
    syncBuiltinESMExports();
  }
  return steps;
}

describe('checkpoint manifests: never a moment without a usable one', () => {
  it('at every file-system step of appending rounds, checkpoint.json exists and is a complete manifest (the previous one is linked aside, not moved)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manifest-steps-'));
    try {
      const source = join(dir, 'source');
      await killedRun(source, 2);
      const { manifest, journal } = readCheckpoint(source);
      const folder = join(dir, 'steps');
      fs.mkdirSync(folder);
      const writer = new CheckpointWriter(folder, manifest.runId, manifest.plan);
      let appended = 0;
      const steps = await atEveryStep(
        (after) => {
          if (appended === 0) return;
          const loaded = readCheckpoint(folder);
          assert.equal(loaded.warning, null, `after ${after}: ${loaded.warning}`);
          assert.ok(loaded.manifest.rounds === appended || loaded.manifest.rounds === appended + 1, `after ${after}: ${loaded.manifest.rounds} rounds`);
        },
        async () => {
          for (const entry of journal) {
            await writer.append(entry, manifest.spent, manifest.best);
            appended += 1;
          }
        },
      );
      assert.ok(steps >= journal.length * 3, `only ${steps} steps seen`);
      assert.equal(readCheckpoint(folder).manifest.rounds, journal.length);
      assert.equal((JSON.parse(readFileSync(join(folder, PREVIOUS_MANIFEST_FILE), 'utf8')) as CheckpointManifest).rounds, journal.length - 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('resuming from checkpoint.prev.json past a damaged checkpoint.json: at every step of the next round a usable manifest stays (the damaged one is never linked over the good one)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manifest-resume-steps-'));
    try {
      const source = join(dir, 'source');
      await killedRun(source, 2);
      const all = readCheckpoint(source);
      for (const damaged of ['', '{}', 'null', '{"version":1,"runId"']) {
        const folder = join(dir, `resume-${damaged.length}`);
        fs.cpSync(source, folder, { recursive: true });
        writeFileSync(join(folder, MANIFEST_FILE), damaged);
        const { manifest } = readCheckpoint(folder);
        const rounds = manifest.rounds;
        let writer: CheckpointWriter | null = null;
        await atEveryStep(
          (after) => {
            let loaded;
            try {
              loaded = readCheckpoint(folder);
            } catch (error) {
              assert.fail(`checkpoint.json ${JSON.stringify(damaged)}, after ${after}: no usable manifest left (${(error as Error).message})`);
            }
            assert.ok(loaded.manifest.rounds === rounds || loaded.manifest.rounds === rounds + 1, `after ${after}: ${loaded.manifest.rounds} rounds`);
          },
          async () => {
            writer = new CheckpointWriter(folder, manifest.runId, manifest.plan, manifest);
            await writer.append(all.journal[rounds]!, manifest.spent, manifest.best);
          },
        );
        const after = readCheckpoint(folder);
        assert.equal(after.warning, null);
        assert.equal(after.manifest.rounds, rounds + 1);
        assert.equal((JSON.parse(readFileSync(join(folder, PREVIOUS_MANIFEST_FILE), 'utf8')) as CheckpointManifest).checksum, manifest.checksum);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('SIGKILL of a process appending rounds in a loop, at random moments: checkpoint.json is always there and usable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manifest-kill-'));
    try {
      const source = join(dir, 'source');
      await killedRun(source, 2);
      const store = pathToFileURL(join(repoRoot(), 'dist', 'coordinator', 'checkpoint', 'checkpoint-store.js')).href;
      const script = join(dir, 'append-loop.mjs');
      writeFileSync(
        script,
        `import { mkdirSync } from 'node:fs';\n` +
          `import { CheckpointWriter, readCheckpoint } from ${JSON.stringify(store)};\n` +
          `const [source, folder] = process.argv.slice(2);\n` +
          `const { manifest, journal } = readCheckpoint(source);\n` +
          `mkdirSync(folder);\n` +
          `const writer = new CheckpointWriter(folder, manifest.runId, manifest.plan);\n` +
          `await writer.append(journal[0], manifest.spent, manifest.best);\n` +
          `process.stdout.write('ready\\n');\n` +
          `for (let i = 1; ; i++) await writer.append(journal[i % journal.length], manifest.spent, manifest.best);\n`,
      );
      let state = 99;
      const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const seen: number[] = [];
      for (let trial = 0; trial < 12; trial++) {
        const folder = join(dir, `loop-${trial}`);
        const child = spawn(process.execPath, [script, source, folder], { stdio: ['ignore', 'pipe', 'inherit'] });
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
        // The scenario, not a wait for an event: the kill lands at a random point of the append loop.
        await sleep(5 + Math.floor(random() * 150));
        assert.ok(child.kill('SIGKILL'), `trial ${trial}: the loop had stopped`);
        assert.equal(await exited, null);
        assert.ok(existsSync(join(folder, MANIFEST_FILE)), `trial ${trial}: checkpoint.json missing after the kill`);
        const loaded = readCheckpoint(folder);
        assert.equal(loaded.warning, null, `trial ${trial}: ${loaded.warning}`);
        seen.push(loaded.manifest.rounds);
      }
      process.stdout.write(`# rounds complete at each kill: ${seen.join(', ')}\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
