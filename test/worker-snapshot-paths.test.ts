/**
 * A worker's snapshots are its own (proto/worker.proto, SnapshotCommand): no path crosses the wire. The
 * probe: anyone who reaches a worker sent `SnapshotCommand.file` and `drop` as paths, wrote a file with
 * chosen bytes anywhere and deleted a chosen file. Here a real worker server is sent what such a caller
 * sends, both as the old messages had it and as names that try to leave the worker's state folder.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { pino } from 'pino';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { setupToWire } from '../proto/setup-message.js';
import { PROTO_FILE } from '../proto/worker-proto.js';
import { WorkerServer } from '../worker/grpc-server.js';
import { DEFAULT_STATE_TTL_MS, openStateFolder, sweepStaleScopes } from '../worker/state-folder.js';
import { editedWorkerProto, RawWorkerClient, refused } from './support/raw-worker-client.js';

/** The snapshot messages of protocol 2, when they carried paths on the worker's machine. */
const pathMessages = (text: string) =>
  text
    .replace(/message SnapshotCommand \{[^}]*\}/, 'message SnapshotCommand {\n  string file = 1;\n  optional string drop = 2;\n}')
    .replace(/message RestoreCommand \{[^}]*\}/, 'message RestoreCommand {\n  string file = 1;\n  string sha256 = 2;\n  repeated uint64 ids = 3;\n}');

describe('worker snapshots: every path is the worker\'s own, under its state folder', () => {
  let dir: string;
  let stateDir: string;
  let server: WorkerServer;
  let ours: RawWorkerClient;
  let old: RawWorkerClient;
  const plan = resolveRunConfig({ budgetNfe: 1000, seed: 3 });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'snapshot-paths-'));
    stateDir = join(dir, 'state');
    server = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', stateDir, logger: pino({ level: 'silent' }) });
    ours = new RawWorkerClient(server.address, protobuf.loadSync(PROTO_FILE));
    old = new RawWorkerClient(server.address, await editedWorkerProto(pathMessages));
    await ours.setup('paths', { ...setupToWire(workerSetupFor(plan)), snapshotScope: 'run-a' });
    await ours.commands('paths', [{ init: { ids: [1, 2] } }]);
  });
  after(async () => {
    ours?.close();
    old?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a snapshot as protocol 2 sent it (file and drop, host paths) writes nothing there and deletes nothing: the command names no snapshot', async () => {
    const planted = join(dir, 'planted.bin');
    const victim = join(dir, 'victim.txt');
    await writeFile(victim, 'keep me');
    const error = await refused(old.commands('paths', [{ snapshot: { file: planted, drop: victim } }]));
    assert.equal(error.code, 3, error.details); // INVALID_ARGUMENT
    assert.match(error.details, /commands\[0\]\.snapshot\.name: missing/);
    assert.ok(!existsSync(planted), 'the worker wrote where the wire said');
    assert.ok(existsSync(victim), 'the worker deleted what the wire said');
    const restore = await refused(old.commands('paths', [{ restore: { file: victim, sha256: '00', ids: [1] } }]));
    assert.match(restore.details, /commands\[0\]\.restore\.name: missing/);
  });

  it('a name that is a path, a parent, hidden, or too long is refused (INVALID_ARGUMENT naming the field), and nothing is written or deleted', async () => {
    const victim = join(dir, 'victim-2.txt');
    await writeFile(victim, 'keep me');
    const names = ['../../planted.bin', join(dir, 'planted.bin'), 'a/b.bin', '..', 'round..bin', '.hidden', 'back\\slash', 'x'.repeat(129)];
    for (const name of names) {
      const error = await refused(ours.commands('paths', [{ snapshot: { name } }]));
      assert.equal(error.code, 3, `${name}: ${error.details}`);
      assert.match(error.details, /^commands\[0\]\.snapshot\.name: .*(not a snapshot name|over the 128)/, name);
    }
    const drop = await refused(ours.commands('paths', [{ snapshot: { name: 'fine.bin', dropName: '../../victim-2.txt' } }]));
    assert.match(drop.details, /^commands\[0\]\.snapshot\.drop_name: "\.\.\/\.\.\/victim-2\.txt" is not a snapshot name/);
    const restore = await refused(ours.commands('paths', [{ restore: { name: '../victim-2.txt', sha256: '00', ids: [1] } }]));
    assert.match(restore.details, /^commands\[0\]\.restore\.name: /);
    assert.ok(existsSync(victim), 'deleted');
    assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('planted')), []);
    assert.ok(!existsSync(join(stateDir, 'run-a', 'fine.bin')), 'a refused batch ran its snapshot anyway');
  });

  it('a good name lands in <state dir>/<run scope>/, the folders its owner\'s alone, and the answer names the snapshot, not where it is', async () => {
    const [init, snapshot] = await ours.commands('paths', [{ init: { ids: [3] } }, { snapshot: { name: 'round-0-worker-0.bin' } }]);
    assert.equal(init!.kind, 'COMMAND_KIND_INIT');
    const written = snapshot!.snapshot as { name: string; ids: number[]; bytes: number; sha256: string };
    assert.deepEqual([written.name, written.ids], ['round-0-worker-0.bin', [1, 2, 3]]);
    assert.ok(!JSON.stringify(snapshot).includes(dir), `the answer shows a path of the worker's machine: ${JSON.stringify(snapshot)}`);
    assert.equal((await stat(join(stateDir, 'run-a', 'round-0-worker-0.bin'))).size, written.bytes);
    for (const folder of [stateDir, join(stateDir, 'run-a')]) assert.equal((await stat(folder)).mode & 0o777, 0o700, folder);
    // Another session of the same run (a resume) finds it; a drop by name deletes only in its own scope.
    await ours.setup('paths.resume-1', { ...setupToWire(workerSetupFor(plan)), snapshotScope: 'run-a' });
    await ours.commands('paths.resume-1', [{ restore: { name: 'round-0-worker-0.bin', sha256: written.sha256, ids: [2, 3] } }, { snapshot: { name: 'round-2-worker-0.bin', dropName: 'round-0-worker-0.bin' } }]);
    assert.deepEqual((await readdir(join(stateDir, 'run-a'))).sort(), ['round-2-worker-0.bin']);
  });

  it('a run scope is a name too: one that is a path is refused at Setup, naming the field', async () => {
    const error = await refused(ours.setup('scoped', { ...setupToWire(workerSetupFor(plan)), snapshotScope: '../../elsewhere' }));
    assert.equal(error.code, 3, error.details);
    assert.match(error.details, /setup\.snapshot_scope: "\.\.\/\.\.\/elsewhere" is not a snapshot name/);
  });
});

describe('a worker\'s state folder', () => {
  it('is made its owner\'s alone, tightened if it was open, and refused when it is a symbolic link or not a folder, naming --state-dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'state-folder-'));
    try {
      const made = openStateFolder(join(dir, 'a', 'state'));
      assert.equal((await stat(made)).mode & 0o777, 0o700);
      const open = join(dir, 'open');
      await mkdir(open, { mode: 0o755 });
      openStateFolder(open);
      assert.equal((await stat(open)).mode & 0o777, 0o700);
      await symlink(made, join(dir, 'link'));
      assert.throws(() => openStateFolder(join(dir, 'link')), /--state-dir .*link: is a symbolic link; give the folder itself/);
      await writeFile(join(dir, 'file'), '');
      assert.throws(() => openStateFolder(join(dir, 'file')), /--state-dir .*file: is not a folder/);
      assert.throws(() => openStateFolder(join(dir, 'file', 'below')), /--state-dir .*below: is not a folder/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("a worker's old snapshots", () => {
  const DAY = 24 * 3600 * 1000;
  /** A scope folder with one snapshot file, last written `ageMs` ago. */
  async function scopeOf(stateDir: string, name: string, ageMs: number): Promise<string> {
    const folder = join(stateDir, name);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'round-3-w0'), 'states');
    const then = new Date(Date.now() - ageMs);
    await utimes(folder, then, then);
    return folder;
  }

  it('are deleted once unwritten for the time to live, unless a live run uses them; a link or a name that is not a scope is left alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'state-sweep-'));
    try {
      const stateDir = openStateFolder(join(dir, 'state'));
      const old = await scopeOf(stateDir, 'run-finished-long-ago', 8 * DAY);
      const live = await scopeOf(stateDir, 'run-live-but-quiet', 8 * DAY);
      const recent = await scopeOf(stateDir, 'run-interrupted-yesterday', DAY);
      const outside = await scopeOf(dir, 'outside', 30 * DAY);
      await symlink(outside, join(stateDir, 'run-linked'));
      const odd = await scopeOf(stateDir, '.hidden', 30 * DAY);
      assert.deepEqual(sweepStaleScopes(stateDir, DEFAULT_STATE_TTL_MS, new Set(['run-live-but-quiet'])), ['run-finished-long-ago']);
      assert.equal(existsSync(old), false);
      for (const kept of [live, recent, outside, join(outside, 'round-3-w0'), odd]) assert.ok(existsSync(kept), kept);
      // A shorter time to live takes yesterday's too.
      assert.deepEqual(sweepStaleScopes(stateDir, DAY / 2, new Set()).sort(), ['run-interrupted-yesterday', 'run-live-but-quiet']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a worker sweeps at start what earlier processes left (--state-ttl), and keeps what is younger', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'state-sweep-'));
    try {
      const stateDir = openStateFolder(join(dir, 'state'));
      const old = await scopeOf(stateDir, 'run-old', 3 * DAY);
      const young = await scopeOf(stateDir, 'run-young', DAY / 4);
      const worker = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', stateDir, stateTtlMs: 2 * DAY, logger: pino({ level: 'silent' }) });
      try {
        assert.equal(existsSync(old), false);
        assert.ok(existsSync(young));
      } finally {
        await worker.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
