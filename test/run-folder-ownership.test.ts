import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimRunFolder, LOCK_FILE, RunFolderError, RunFolderLock } from '../coordinator/run/run-folder-lock.js';
import { evosearch } from './support/evosearch-cli.js';



/** Every file of a folder with its sha256: what must not change when a run is refused. */
function contents(folder: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(folder, { recursive: true }) as string[]) {
    const path = join(folder, name);
    try {
      out[name] = createHash('sha256').update(readFileSync(path)).digest('hex');
    } catch {
      out[name] = 'folder';
    }
  }
  return out;
}

const RUN = ['run', '--model', 'analytic:gmm', '--budget-nfe', '1000', '--seed', '1', '--no-progress'];

describe('run folders are owned', () => {
  it('a run refuses a folder holding a finished run and changes nothing in it; --replace discards that run', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'owned-')), 'run');
    const first = await evosearch([...RUN, '--out', out]);
    assert.equal(first.code, 0, first.stderr);
    const before = contents(out);
    const second = await evosearch([...RUN, '--seed', '2', '--out', out]);
    assert.equal(second.code, 2, second.stderr);
    assert.match(second.stderr, /holds a finished run \(record\.json\); choose another --out, or add --replace/);
    assert.deepEqual(contents(out), before, 'the finished run is untouched');
    const replaced = await evosearch([...RUN, '--seed', '2', '--out', out, '--replace']);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.equal(JSON.parse(readFileSync(join(out, 'record.json'), 'utf8')).plan.seed, 2);
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is gone once the run ends');
  });

  it('a folder where a run failed before its first round (a journal, no manifest) can be run into again', async () => {
    const out = await mkdtemp(join(tmpdir(), 'owned-failed-start-'));
    writeFileSync(join(out, 'journal.jsonl'), '');
    const run = await evosearch([...RUN, '--out', out]);
    assert.equal(run.code, 0, run.stderr);
  });

  it('a run refuses a folder holding an unfinished run and says how to continue it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'owned-unfinished-'));
    writeFileSync(join(out, 'checkpoint.json'), '{}');
    const refused = await evosearch([...RUN, '--out', out]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /holds an unfinished run .*evosearch resume/);
    assert.equal(readFileSync(join(out, 'checkpoint.json'), 'utf8'), '{}');
  });

  it('resuming a finished run says so and changes nothing', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'owned-resume-')), 'run');
    assert.equal((await evosearch([...RUN, '--out', out])).code, 0);
    const before = contents(out);
    const resumed = await evosearch(['resume', out]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /holds a finished run \(record\.json\): nothing to resume, nothing changed/);
    assert.deepEqual(contents(out), before);
  });

  it('a second process cannot write a folder another one is writing; a lock left by a dead process is taken over', async () => {
    const out = await mkdtemp(join(tmpdir(), 'owned-lock-'));
    // A live process of this host holds the lock.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: holder.pid, host: hostname(), since: 'then' }));
      const refused = await evosearch([...RUN, '--out', out]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, new RegExp(`another evosearch process \\(pid ${holder.pid}, since then\\) is writing it`));
      assert.ok(!existsSync(join(out, 'record.json')));
    } finally {
      holder.kill('SIGKILL');
    }
    await new Promise((resolve) => holder.once('exit', resolve));
    const taken = await evosearch([...RUN, '--out', out]);
    assert.equal(taken.code, 0, `a dead owner's lock is stale: ${taken.stderr}`);
    assert.ok(existsSync(join(out, 'record.json')));
  });

  it('two runs started into one folder at once: exactly one runs, the other is refused', async () => {
    const out = await mkdtemp(join(tmpdir(), 'owned-race-'));
    const results = await Promise.all([evosearch([...RUN, '--out', out]), evosearch([...RUN, '--seed', '3', '--out', out])]);
    const codes = results.map((r) => r.code).sort();
    assert.deepEqual(codes, [0, 2], results.map((r) => r.stderr).join('\n'));
    const winner = results.find((r) => r.code === 0)!;
    assert.match(winner.stdout, new RegExp(`record: ${join(out, 'record.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('a lock of another host is never taken over, and the message says how to clear it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'owned-host-'));
    writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', since: 'then' }));
    assert.throws(() => claimRunFolder(out), (error: unknown) => error instanceof RunFolderError && /process 1 on host elsewhere .* delete .*\.evosearch\.lock/.test(error.message));
    const own = RunFolderLock.acquire(await mkdtemp(join(tmpdir(), 'owned-own-')));
    own.release();
    own.release();
  });
});
