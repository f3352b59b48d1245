import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CheckpointError, CheckpointVersionError, readCheckpoint } from '../coordinator/checkpoint/checkpoint-store.js';
import { repoRoot } from './support/repo-root.js';

const execFileAsync = promisify(execFile);
const bin = () => join(repoRoot(), 'bin', 'evosearch.js');

interface Record {
  best: unknown;
  spent: { nfe: number };
  candidates: { parents: unknown; reward: unknown; evaluations: unknown }[];
}

function decisions(record: Record) {
  return { best: record.best, nfe: record.spent.nfe, candidates: record.candidates.map((c) => ({ parents: c.parents, reward: c.reward, evaluations: c.evaluations })) };
}

async function rounds(folder: string): Promise<number> {
  try {
    return (JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as { rounds: number }).rounds;
  } catch {
    return 0;
  }
}

describe('checkpoints: a killed run resumes to the uninterrupted answer', () => {
  it('kill -9 of the run at 20 random points, then evosearch resume: every result equals the undisturbed run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kill-resume-'));
    try {
      const configs = [
        ['--budget-nfe', '150000', '--seed', '2'],
        ['--method', 'particles', '--budget-nfe', '40000', '--seed', '3'],
      ];
      const references = await Promise.all(configs.map(async (args, c) => {
        await execFileAsync(process.execPath, [bin(), 'run', ...args, '--no-progress', '--out', join(dir, `reference-${c}`)]);
        return decisions(JSON.parse(await readFile(join(dir, `reference-${c}`, 'record.json'), 'utf8')) as Record);
      }));
      let state = 12345;
      const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      let killed = 0;
      let identical = 0;
      const trials = 20;
      for (let trial = 0; trial < trials; trial++) {
        const c = trial % configs.length;
        const folder = join(dir, `trial-${trial}`);
        const child = spawn(process.execPath, [bin(), 'run', ...configs[c]!, '--no-progress', '--out', folder], { stdio: 'ignore' });
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        // After the first checkpoint, wait a random while, then kill -9 (usually mid-round).
        while ((await rounds(folder)) < 1 && child.exitCode === null) await sleep(5);
        await sleep(Math.floor(random() * 300));
        if (child.exitCode === null) {
          child.kill('SIGKILL');
          killed += 1;
        }
        await exited;
        if (!existsSync(join(folder, 'record.json'))) await execFileAsync(process.execPath, [bin(), 'resume', folder, '--no-progress']);
        const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as Record;
        assert.deepEqual(decisions(record), references[c], `trial ${trial}`);
        identical += 1;
      }
      assert.ok(killed >= trials / 2, `only ${killed} of ${trials} runs were still going when killed`);
      assert.equal(identical, trials);
      process.stdout.write(`# kill -9 trials: ${trials}, killed mid-run: ${killed}, identical to the undisturbed run: ${identical}\n`);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('a corrupted or truncated checkpoint is detected; the previous one is used with a warning; another version is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'corrupt-'));
    try {
      const reference = join(dir, 'reference');
      await execFileAsync(process.execPath, [bin(), 'run', '--budget-nfe', '20000', '--seed', '9', '--no-progress', '--out', reference]);
      const expected = decisions(JSON.parse(await readFile(join(reference, 'record.json'), 'utf8')) as Record);
      // A run folder as a kill leaves it: checkpoints, no record. Corrupt the last round of the journal.
      const folder = join(dir, 'corrupted');
      await execFileAsync(process.execPath, [bin(), 'run', '--budget-nfe', '20000', '--seed', '9', '--no-progress', '--out', folder]);
      await rm(join(folder, 'record.json'));
      const journal = readFileSync(join(folder, 'journal.jsonl'), 'utf8').split('\n');
      const last = journal.length - 2;
      // Change one digit in the middle of the round's record: still JSON, no longer what was written.
      const line = journal[last]!;
      const at = line.slice(line.length >> 1).search(/[0-8]/) + (line.length >> 1);
      journal[last] = line.slice(0, at) + String(Number(line[at]) + 1) + line.slice(at + 1);
      writeFileSync(join(folder, 'journal.jsonl'), journal.join('\n'));
      const loaded = readCheckpoint(folder);
      assert.match(loaded.warning ?? '', /checksum mismatch/);
      const { stderr } = await execFileAsync(process.execPath, [bin(), 'resume', folder, '--no-progress']);
      assert.match(stderr, /warning: .*previous checkpoint/);
      assert.deepEqual(decisions(JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as Record), expected);
      // A truncated manifest and no previous one: a clear error, no crash.
      const broken = join(dir, 'broken');
      await execFileAsync(process.execPath, [bin(), 'run', '--budget-nfe', '20000', '--seed', '9', '--no-progress', '--out', broken]);
      // As a kill leaves it (a finished run is not resumed at all).
      await rm(join(broken, 'record.json'));
      writeFileSync(join(broken, 'checkpoint.json'), '{"version":1,"rou');
      await rm(join(broken, 'checkpoint.prev.json'));
      assert.throws(() => readCheckpoint(broken), (e: unknown) => e instanceof CheckpointError && /not readable JSON/.test(e.message));
      const failed = await execFileAsync(process.execPath, [bin(), 'resume', broken]).then(() => null, (e: { code: number; stderr: string }) => e);
      assert.equal(failed?.code, 3);
      assert.match(failed!.stderr, /checkpoint\.json: not readable JSON/);
      // Another checkpoint version is refused, not misread.
      const versioned = join(dir, 'versioned');
      await execFileAsync(process.execPath, [bin(), 'run', '--budget-nfe', '20000', '--seed', '9', '--no-progress', '--out', versioned]);
      const manifest = JSON.parse(readFileSync(join(versioned, 'checkpoint.json'), 'utf8')) as { version: number };
      writeFileSync(join(versioned, 'checkpoint.json'), JSON.stringify({ ...manifest, version: 99 }));
      assert.throws(() => readCheckpoint(versioned), (e: unknown) => e instanceof CheckpointVersionError && /version 99, this evosearch reads versions 1 \(unkeyed\) and 2/.test(e.message));
      const { stdout } = await execFileAsync(process.execPath, [bin(), 'runs', dir]);
      assert.match(stdout, /\| corrupted \| [0-9a-f-]+ \| finished \|/);
      assert.match(stdout, /\| reference \| [0-9a-f-]+ \| finished \| 6 \| 20000 \|/);
      // A run id works as well as its folder; an unknown one is a clear error.
      const runId = (JSON.parse(readFileSync(join(reference, 'checkpoint.json'), 'utf8')) as { runId: string }).runId;
      await rm(join(reference, 'record.json'));
      await execFileAsync(process.execPath, [bin(), 'resume', runId, '--runs-dir', dir, '--no-progress']);
      assert.deepEqual(decisions(JSON.parse(await readFile(join(reference, 'record.json'), 'utf8')) as Record), expected);
      const unknown = await execFileAsync(process.execPath, [bin(), 'resume', 'no-such-run', '--runs-dir', dir]).then(() => null, (e: { code: number; stderr: string }) => e);
      assert.equal(unknown?.code, 2, 'a run the user names wrongly is bad input');
      assert.match(unknown!.stderr, /no run folder or run id 'no-such-run'/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
