import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { connectNats } from '../cluster/nats-connection.js';
import { EVENTS_PREFIX } from '../cluster/events.js';
import { COORDINATORS_BUCKET, liveWorkers, MAX_ENTRY_BYTES, STALE_AFTER_MS, sweepStaleWorkers, WORKERS_BUCKET } from '../cluster/worker-registry.js';
import { memberToJson } from '../proto/coordinator-messages.js';
import { modelBuild } from '../worker/model-build.js';
import { evosearch } from './support/evosearch-cli.js';
import { recordMessages, startNatsServer, type NatsServer, type RecordedMessage } from './support/nats-server.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';
import { waitFor } from './support/wait-for.js';

/** A port on loopback that nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A Member entry as any writer of the bucket could put it. */
function member(id: string, address: string, build: string, heartbeatAt = new Date().toISOString()): string {
  return JSON.stringify(memberToJson({ id, address, model: 'analytic:gmm', build, startedAt: heartbeatAt, heartbeatAt }));
}

const RUN = ['run', '--budget-nfe', '2000', '--seed', '5', '--no-progress'];

describe('cluster membership from NATS KV is judged, not trusted (real nats-server, real workers)', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let workersKv: KV;
  let dir: string;
  const workers: WorkerProcess[] = [];
  let events: RecordedMessage[];

  before(async () => {
    nats = await startNatsServer();
    nc = await connectNats(nats.url, 'membership test');
    workersKv = await new Kvm(nc).create(WORKERS_BUCKET, { history: 1 });
    dir = await mkdtemp(join(tmpdir(), 'cluster-membership-'));
    events = recordMessages(nc, `${EVENTS_PREFIX}.worker.>`);
  });
  after(async () => {
    await stopWorkers(workers);
    await nc?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('an entry claiming a heartbeat in 2099 goes stale by the NATS server\'s clock, and the sweep removes it and announces it lost', async () => {
    await workersKv.put('from-the-future', member('from-the-future', '127.0.0.1:9', 'any-build', '2099-01-01T00:00:00.000Z'));
    assert.ok((await liveWorkers(nc, { staleAfterMs: 1000 })).some((w) => w.id === 'from-the-future'), 'a fresh entry is listed');
    // The scenario: the entry's writer has stopped writing, and only time makes it stale.
    await sleep(1300);
    assert.ok(!(await liveWorkers(nc, { staleAfterMs: 1000 })).some((w) => w.id === 'from-the-future'), 'listed although not written for 1.3 s');
    const swept = await sweepStaleWorkers(nc, { staleAfterMs: 1000 });
    assert.deepEqual(swept.map((w) => w.id), ['from-the-future']);
    assert.equal(await workersKv.get('from-the-future'), null, 'the sweep leaves the entry in the bucket');
    await waitFor(() => events.some((e) => e.subject === `${EVENTS_PREFIX}.worker.lost` && e.data.id === 'from-the-future'), 5000, 'the worker.lost event of the entry from the future');
    const lost = events.find((e) => e.subject === `${EVENTS_PREFIX}.worker.lost` && e.data.id === 'from-the-future')!;
    assert.ok(Date.parse(lost.data.lastHeartbeat as string) < Date.now(), `lastHeartbeat is the time the server stored it, not the one claimed: ${JSON.stringify(lost.data)}`);
  });

  it('a dead port, a worker of another build, 4 bytes of garbage and an oversized entry are each skipped with a warning naming bucket and key; the run goes on', async () => {
    workers.push(await startWorker('analytic:gmm', ['--nats', nats.url]));
    const other = await startWorker('analytic:gmm?seed=2');
    workers.push(other);
    const build = await modelBuild('analytic:gmm');
    const dead = `127.0.0.1:${await deadPort()}`;
    await workersKv.put('dead-port', member('dead-port', dead, build));
    await workersKv.put('impostor', member('impostor', other.address, build));
    await workersKv.put('garbage', new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    const oversized = JSON.stringify({ id: 'oversized', padding: 'x'.repeat(MAX_ENTRY_BYTES) });
    await workersKv.put('oversized', oversized);
    const folder = join(dir, 'goes-on');
    const run = await evosearch([...RUN, '--cluster', nats.url, '--out', folder]);
    assert.equal(run.code, 0, run.stderr);
    const log = await readFile(join(folder, 'run.log'), 'utf8');
    for (const text of [run.stderr, log]) {
      assert.match(text, new RegExp(`skipped worker dead-port at ${dead} \\(${WORKERS_BUCKET}\\): cannot be reached or refused at connection \\(UNAVAILABLE`));
      assert.match(text, new RegExp(`skipped worker impostor at ${other.address} \\(${WORKERS_BUCKET}\\): cannot be reached or refused at connection \\(FAILED_PRECONDITION: this worker serves analytic:gmm\\?seed=2`));
      assert.match(text, new RegExp(`passed over ${WORKERS_BUCKET} key garbage: not JSON \\(4 bytes\\), so not a Member entry`));
      assert.match(text, new RegExp(`passed over ${WORKERS_BUCKET} key oversized: ${Buffer.byteLength(oversized)} bytes, more than the ${MAX_ENTRY_BYTES} a Member entry may hold`));
    }
    const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as { workers: string[] };
    assert.deepEqual(record.workers.map((w) => w.split(' ')[0]), [workers[0]!.address], 'only the real worker of the build ran the search');
  });

  it('with no usable worker the run fails, listing why each was skipped', async () => {
    const build = await modelBuild('analytic:gmm?seed=7');
    const dead = `127.0.0.1:${await deadPort()}`;
    await workersKv.put('only-a-dead-one', member('only-a-dead-one', dead, build));
    await workersKv.put('junk', 'junk');
    const run = await evosearch(['run', '--model', 'analytic:gmm?seed=7', '--budget-nfe', '1000', '--no-progress', '--cluster', nats.url, '--out', join(dir, 'none-usable')]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, new RegExp(`evosearch: no usable worker at ${nats.url.replace(/[.]/g, '\\.')} serves analytic:gmm\\?seed=7 build ${build}: .*skipped worker only-a-dead-one at ${dead} \\(${WORKERS_BUCKET}\\): cannot be reached`));
    assert.match(run.stderr, new RegExp(`evosearch: no usable worker .*passed over ${WORKERS_BUCKET} key junk: not JSON \\(4 bytes\\)`));
  });

  it('a coordinator entry claiming 2099 stops getting runs once its writer stops; a garbage one is passed over by key', async () => {
    const coordinators = await new Kvm(nc).create(COORDINATORS_BUCKET, { history: 1 });
    const dead = `127.0.0.1:${await deadPort()}`;
    await coordinators.put('coordinator-fake', member('coordinator-fake', dead, '', '2099-01-01T00:00:00.000Z'));
    await coordinators.put('coordinator-junk', new Uint8Array([1, 2, 3, 4]));
    // While fresh, the fake is a coordinator as far as anyone can tell (identity is the server's permissions' job).
    const fresh = await evosearch([...RUN, '--cluster', nats.url, '--out', join(dir, 'to-the-fake')]);
    assert.match(fresh.stdout + fresh.stderr, new RegExp(dead.replace(/[.]/g, '\\.')), 'a fresh coordinator entry was not tried');
    assert.match(fresh.stderr, new RegExp(`passed over a coordinator entry: ${COORDINATORS_BUCKET} key coordinator-junk: not JSON \\(4 bytes\\)`));
    // The scenario: the fake's writer wrote once; the server's timestamp ages, whatever the entry claims.
    await sleep(STALE_AFTER_MS + 500);
    const folder = join(dir, 'not-to-the-fake');
    const run = await evosearch([...RUN, '--cluster', nats.url, '--out', folder]);
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /submitted run/, 'the run went to a coordinator');
    assert.ok((JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as { workers: string[] }).workers.length > 0);
  });
});
