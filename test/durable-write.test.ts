/**
 * files/durable-write.ts: a replaced file is the old content or the new one, never part of either, for
 * a reader at any moment and after a SIGKILL at any moment; a killed writer's temporary file never
 * makes a later write fail and is cleared by it; the file is synced before its rename and the folder
 * after it (what survives a power loss, which no kill can show).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs, { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { appendFileDurable, isDurableTemporary, replaceWithLink, writeFileDurable, writeFileDurableSync } from '../files/durable-write.js';
import { repoRoot } from './support/repo-root.js';

/**
 * Generation `n`'s content: a header naming n, the body's length and sha256, then the body (64 KiB to
 * 4 MiB, so a write takes a while and a kill lands inside one). Any prefix or mix fails `generationOf`.
 */
function content(n: number): Buffer {
  const length = 65536 + ((n * 2654435761) % (4 << 20));
  const body = Buffer.alloc(length, n % 251);
  body.writeUInt32LE(n, 0);
  const sha = createHash('sha256').update(body).digest('hex');
  return Buffer.concat([Buffer.from(`generation ${n} ${length} ${sha}\n`), body]);
}

/** The generation a file's bytes are, or null when they are not a complete one. */
function generationOf(bytes: Buffer): number | null {
  const newline = bytes.indexOf(0x0a);
  const match = /^generation (\d+) (\d+) ([0-9a-f]{64})$/.exec(bytes.subarray(0, Math.max(newline, 0)).toString());
  if (match === null) return null;
  const body = bytes.subarray(newline + 1);
  if (body.length !== Number(match[2]) || createHash('sha256').update(body).digest('hex') !== match[3]) return null;
  return Number(match[1]);
}

/** A child that replaces `target` with generation 1, 2, 3, … forever, printing each number once written. */
function writerScript(dir: string): string {
  const durable = pathToFileURL(join(repoRoot(), 'dist', 'files', 'durable-write.js')).href;
  const script = join(dir, 'write-loop.mjs');
  writeFileSync(
    script,
    `import { createHash } from 'node:crypto';\n` +
      `import { writeFileSync } from 'node:fs';\n` +
      `import { writeFileDurable, writeFileDurableSync } from ${JSON.stringify(durable)};\n` +
      `const [target, how] = process.argv.slice(2);\n` +
      `${content.toString()}\n` +
      `const write = { sync: (f, d) => writeFileDurableSync(f, d), async: (f, d) => writeFileDurable(f, d), plain: (f, d) => writeFileSync(f, d) }[how];\n` +
      `for (let n = 1; ; n++) { await write(target, content(n)); process.stdout.write(n + '\\n'); }\n`,
  );
  return script;
}

interface Trial {
  /** The generation the file held after the kill (null: torn). */
  readonly after: number | null;
  /** The last generation the child reported written before it died. */
  readonly reported: number;
  /** Reads of the file while the child wrote, and how many of them were not a complete generation. */
  readonly reads: number;
  readonly tornReads: number;
  /** Temporary files the kill left. */
  readonly leftovers: number;
}

/** Starts the writer on `target` (holding generation 0), reads the file while it writes, kills it after `delayMs`. */
async function killWhileWriting(script: string, target: string, how: string, delayMs: number): Promise<Trial> {
  writeFileDurableSync(target, content(0));
  const child = spawn(process.execPath, [script, target, how], { stdio: ['ignore', 'pipe', 'inherit'] });
  let reported = 0;
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    const lines = output.split('\n');
    output = lines.pop()!;
    if (lines.length > 0) reported = Number(lines[lines.length - 1]);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  while (reported === 0) await sleep(1);
  const until = Date.now() + delayMs;
  let reads = 0;
  let tornReads = 0;
  while (Date.now() < until) {
    reads += 1;
    if (generationOf(readFileSync(target)) === null) tornReads += 1;
    await sleep(0);
  }
  assert.ok(child.kill('SIGKILL'), 'the writer had stopped');
  await exited;
  const names = readdirSync(join(target, '..'));
  return { after: generationOf(readFileSync(target)), reported, reads, tornReads, leftovers: names.filter(isDurableTemporary).length };
}

describe('durable writes', () => {
  it('a process replacing a file in a loop, SIGKILLed at random moments: the file is the old or the new content, readers never see half, and the next write clears the leftovers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'durable-kill-'));
    try {
      const script = writerScript(dir);
      let state = 4242;
      const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const trials: Trial[] = [];
      for (let i = 0; i < 10; i++) {
        const folder = join(dir, `kill-${i}`);
        mkdirSync(folder);
        const target = join(folder, 'record.json');
        const how = i % 2 === 0 ? 'sync' : 'async';
        const trial = await killWhileWriting(script, target, how, 20 + Math.floor(random() * 200));
        trials.push(trial);
        assert.notEqual(trial.after, null, `trial ${i} (${how}): the file is torn after the kill`);
        // The one being written when the kill came, or the last one finished.
        assert.ok(trial.after! >= trial.reported && trial.after! <= trial.reported + 1, `trial ${i}: generation ${trial.after} after ${trial.reported} were reported written`);
        assert.equal(trial.tornReads, 0, `trial ${i}: ${trial.tornReads} of ${trial.reads} reads saw a partial file`);
        // A later write, sync or async, does not trip on what the kill left, and clears it.
        if (i % 4 < 2) writeFileDurableSync(target, content(1000 + i));
        else await writeFileDurable(target, content(1000 + i));
        assert.equal(generationOf(readFileSync(target)), 1000 + i);
        assert.deepEqual(readdirSync(folder), ['record.json'], `trial ${i}: leftovers after the next write`);
      }
      const leftovers = trials.filter((t) => t.leftovers > 0).length;
      process.stdout.write(`# ${trials.length} kills: generations ${trials.map((t) => `${t.after} (reported ${t.reported})`).join(', ')}; ${leftovers} left a temporary file; ${trials.reduce((a, t) => a + t.reads, 0)} reads while writing, none partial\n`);
      assert.ok(leftovers > 0, 'no kill landed inside a write: the test did not test the leftover case');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the same harness catches a plain in-place write: it is torn by a kill and seen half-written by readers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'durable-control-'));
    try {
      const script = writerScript(dir);
      let torn = 0;
      let tornReads = 0;
      for (let i = 0; i < 6 && (torn === 0 || tornReads === 0); i++) {
        const folder = join(dir, `plain-${i}`);
        mkdirSync(folder);
        const trial = await killWhileWriting(script, join(folder, 'record.json'), 'plain', 30 + 20 * i);
        if (trial.after === null) torn += 1;
        tornReads += trial.tornReads;
      }
      assert.ok(torn > 0 || tornReads > 0, 'a plain writeFileSync was never seen torn: the harness cannot tell a durable write from one that is not');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('syncs the new file before its rename and the folder after it, and leaves the target alone when the write fails', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'durable-order-'));
    const sync = fs as unknown as Record<string, (...args: unknown[]) => unknown>;
    const names = ['openSync', 'fsyncSync', 'closeSync', 'renameSync'];
    const saved = new Map(names.map((n) => [n, sync[n]!]));
    const events: string[] = [];
    const paths = new Map<number, string>();
    try {
      const target = join(dir, 'checkpoint.json');
      writeFileSync(target, 'old');
      sync.openSync = (...args: unknown[]) => {
        const fd = saved.get('openSync')!(...args) as number;
        paths.set(fd, args[0] === dir ? 'folder' : isDurableTemporary(String(args[0]).slice(dir.length + 1)) ? 'temporary' : String(args[0]));
        events.push(`open ${paths.get(fd)}`);
        return fd;
      };
      sync.fsyncSync = (...args: unknown[]) => {
        events.push(`fsync ${paths.get(args[0] as number)}`);
        return saved.get('fsyncSync')!(...args);
      };
      sync.closeSync = (...args: unknown[]) => {
        events.push(`close ${paths.get(args[0] as number)}`);
        return saved.get('closeSync')!(...args);
      };
      sync.renameSync = (...args: unknown[]) => {
        events.push(`rename temporary -> ${String(args[1]) === target ? 'target' : String(args[1])}`);
        return saved.get('renameSync')!(...args);
      };
      syncBuiltinESMExports();
      writeFileDurableSync(target, 'new');
      assert.deepEqual(events, ['open temporary', 'fsync temporary', 'close temporary', 'rename temporary -> target', 'open folder', 'fsync folder', 'close folder']);
      assert.equal(readFileSync(target, 'utf8'), 'new');
    } finally {
      for (const [n, f] of saved) sync[n] = f;
      syncBuiltinESMExports();
    }
    try {
      // A failed write (here: the target is a folder) leaves the target as it was and no temporary file.
      mkdirSync(join(dir, 'taken', 'inside'), { recursive: true });
      assert.throws(() => writeFileDurableSync(join(dir, 'taken'), 'x'));
      await assert.rejects(writeFileDurable(join(dir, 'taken'), 'x'));
      assert.deepEqual(readdirSync(dir).sort(), ['checkpoint.json', 'taken']);
      assert.deepEqual(readdirSync(join(dir, 'taken')), ['inside']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('replaceWithLink makes the target the source now, unchanged by the next replacement of the source; appendFileDurable appends', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'durable-link-'));
    try {
      const current = join(dir, 'checkpoint.json');
      const previous = join(dir, 'checkpoint.prev.json');
      writeFileDurableSync(current, 'round 1');
      await replaceWithLink(current, previous);
      await writeFileDurable(current, 'round 2');
      assert.equal(readFileSync(previous, 'utf8'), 'round 1');
      assert.equal(readFileSync(current, 'utf8'), 'round 2');
      await replaceWithLink(current, previous);
      assert.equal(readFileSync(previous, 'utf8'), 'round 2');
      await assert.rejects(replaceWithLink(join(dir, 'none'), previous), /ENOENT/);
      assert.equal(readFileSync(previous, 'utf8'), 'round 2');
      const journal = join(dir, 'journal.jsonl');
      await appendFileDurable(journal, 'a\n');
      await appendFileDurable(journal, [Buffer.from('b'), Buffer.from('\n')]);
      assert.equal(readFileSync(journal, 'utf8'), 'a\nb\n');
      assert.deepEqual(readdirSync(dir).sort(), ['checkpoint.json', 'checkpoint.prev.json', 'journal.jsonl']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
