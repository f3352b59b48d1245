import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { CHECKPOINTS_BUCKET, CheckpointMirror, fetchCheckpoint } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { JOURNAL_FILE, type CheckpointManifest } from '../coordinator/checkpoint/checkpoint-store.js';
import { connectNats } from '../cluster/nats-connection.js';
import { withTimeout } from '../async/timeouts-and-turns.js';
import { nextStatus, startNatsServer, type NatsServer } from './support/nats-server.js';

const line = (round: number) => `${JSON.stringify({ round, payload: 'x'.repeat(2000 + round) })}\n`;
const manifestOf = (rounds: number) => JSON.stringify({ rounds });

describe('checkpoint mirror in NATS (real nats-server): consistent at every instant, catches up after an outage', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let dir: string;
  before(async () => {
    nats = await startNatsServer();
    nc = await connectNats(nats.url, 'mirror test');
    dir = await mkdtemp(join(tmpdir(), 'mirror-'));
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Whether the store's manifest, if any, names only rounds the store has. */
  async function consistent(runId: string): Promise<boolean> {
    try {
      const os = await new Objm(nc).create(CHECKPOINTS_BUCKET);
      const manifest = await os.getBlob(`${runId}/manifest`);
      if (manifest === null) return true;
      const { rounds } = JSON.parse(new TextDecoder().decode(manifest)) as { rounds: number };
      for (let round = 0; round < rounds; round++) if ((await os.info(`${runId}/round-${String(round).padStart(6, '0')}`)) === null) return false;
      return true;
    } catch {
      return true; // NATS away: nothing to read, nothing inconsistent
    }
  }

  it('rounds put while NATS is down are put once it is back, and the manifest never runs ahead of them', async () => {
    const runId = 'outage';
    const mirror = new CheckpointMirror(nc, runId);
    mirror.put(0, line(0), manifestOf(1));
    assert.equal(await mirror.flush(), null);
    // NATS goes away for 2 s; once this client has seen it go, the run goes on appending rounds.
    const down = nextStatus(nc, 'disconnect');
    const restarted = nats.restart(2000);
    await withTimeout(down, 5000, 'the client seeing NATS go down');
    for (let round = 1; round <= 3; round++) {
      mirror.put(round, line(round), manifestOf(round + 1));
      // The scenario, not a wait for an event: rounds come at a run's pace through the outage.
      await sleep(300);
    }
    await restarted;
    const checks: boolean[] = [];
    for (let round = 4; round <= 6; round++) {
      mirror.put(round, line(round), manifestOf(round + 1));
      checks.push(await consistent(runId));
      // The scenario: the store is looked at at several instants while the mirror catches up.
      await sleep(50);
    }
    assert.equal(await mirror.flush({ retryForMs: 20_000 }), null);
    assert.equal(mirror.behind, 0);
    checks.push(await consistent(runId));
    assert.deepEqual(checks, checks.map(() => true), 'a manifest named a round the store lacked');
    const folder = join(dir, runId);
    assert.equal(await fetchCheckpoint(nc, runId, folder), true);
    assert.equal(await readFile(join(folder, JOURNAL_FILE), 'utf8'), [0, 1, 2, 3, 4, 5, 6].map(line).join(''));
  });

  it('a run resumed from its folder gives the store the rounds it lacks before its new ones', async () => {
    const runId = 'resumed';
    const folder = join(dir, 'local-resumed');
    await rm(folder, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(folder, { recursive: true }));
    // The store got round 0 before NATS went away; the folder has rounds 0–2.
    const first = new CheckpointMirror(nc, runId);
    first.put(0, line(0), manifestOf(1));
    assert.equal(await first.flush(), null);
    const journal = [0, 1, 2].map(line).join('');
    await writeFile(join(folder, JOURNAL_FILE), `${journal}{"torn`);
    const manifest = { rounds: 3, journalBytes: Buffer.byteLength(journal) } as unknown as CheckpointManifest;
    const mirror = new CheckpointMirror(nc, runId);
    await mirror.resumeFrom(folder, manifest);
    mirror.put(3, line(3), manifestOf(4));
    assert.equal(await mirror.flush(), null);
    const fetched = join(dir, 'fetched-resumed');
    assert.equal(await fetchCheckpoint(nc, runId, fetched), true);
    assert.equal(await readFile(join(fetched, JOURNAL_FILE), 'utf8'), [0, 1, 2, 3].map(line).join(''));
  });

  it('the final flush gives up after its retry time while NATS stays away, and says so', async () => {
    const lonely = await startNatsServer();
    const lonelyNc = await connectNats(lonely.url, 'mirror test, NATS that goes away');
    try {
      const mirror = new CheckpointMirror(lonelyNc, 'gone');
      mirror.put(0, line(0), manifestOf(1));
      assert.equal(await mirror.flush(), null);
      await lonely.stop();
      mirror.put(1, line(1), manifestOf(2));
      const started = Date.now();
      const failure = await mirror.flush({ retryForMs: 1500, retryEveryMs: 200 });
      assert.ok(failure instanceof Error, 'no failure reported with NATS gone');
      assert.ok(mirror.behind >= 1);
      assert.ok(Date.now() - started < 15_000, `flush took ${Date.now() - started} ms`);
    } finally {
      await lonelyNc.close();
      await lonely.stop();
    }
  });
});
