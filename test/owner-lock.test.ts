/**
 * The owner lock (files/owner-lock.ts) never lets two processes in: the lock appears with its owner
 * already written, so no one ever reads it empty and takes it for a crashed writer's.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireOwnerLock, readLockOwner } from '../files/owner-lock.js';
import { repoRoot } from './support/repo-root.js';

const refuse = (owner: { pid: number }) => new Error(`held by ${owner.pid}`);

describe('owner lock', () => {
  it('an empty lock, as one being written by an older release looks, is left alone for a moment, then taken over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'owner-lock-'));
    const file = join(dir, 'lock');
    writeFileSync(file, '');
    assert.throws(() => acquireOwnerLock(file, refuse), /held by 0/, 'a lock seen empty the moment it was made is not a crashed one');
    const old = (Date.now() - 60_000) / 1000;
    utimesSync(file, old, old);
    const release = acquireOwnerLock(file, refuse);
    assert.equal(readLockOwner(file)?.pid, process.pid);
    release();
    assert.deepEqual(readdirSync(dir), [], 'the lock and its private file are gone');
  });

  it('16 processes racing for one lock: exactly one gets it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'owner-lock-race-'));
    const file = join(dir, 'lock');
    const script = `import { acquireOwnerLock } from ${JSON.stringify(join(repoRoot(), 'dist/files/owner-lock.js'))};
      try { acquireOwnerLock(${JSON.stringify(file)}, () => new Error('held')); console.log('got'); setTimeout(() => {}, 1500); } catch (e) { console.log(e.message); }`;
    const outputs = await Promise.all(
      Array.from({ length: 16 }, () => new Promise<string>((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script]);
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('exit', () => resolve(out.trim()));
      })),
    );
    assert.equal(outputs.filter((o) => o === 'got').length, 1, outputs.join(', '));
    assert.ok(outputs.every((o) => o === 'got' || o === 'held'), outputs.join(', '));
  });
});
