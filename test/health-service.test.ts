/**
 * The standard gRPC health service (grpc.health.v1.Health) of real `evosearch worker` and
 * `evosearch coordinator` processes, and `evosearch health`'s answers and exit codes: SERVING under
 * '', 'liveness' and each server's service name; NOT_SERVING, with the reason, while a worker's NATS
 * registration is lost (its /readyz 503 meanwhile, 200 again after), and when a worker drains or a
 * coordinator stops, whose watches then end; over mTLS any certificate of the cluster's CA may ask,
 * one of another CA is refused as TLS, and a dead address is unreachable. In process: a worker's
 * health waits for its model, and a held-up event loop fails liveness for a while.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { MODEL_CONDITION, WorkerServer } from '../worker/grpc-server.js';
import { ProcessHealth } from '../metrics/process-health.js';
import { evosearch } from './support/evosearch-cli.js';
import { checkHealth, healthClient, watchHealth } from './support/health-watch.js';
import { httpRequest, sample, scrape } from './support/http-get.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';
import { startCoordinator } from './support/coordinator-process.js';
import { loadTlsIdentity } from '../security/tls-identity.js';
import type { TransportSecurity } from '../proto/transport-security.js';

/** The suite runs with EVOSEARCH_INSECURE=1 (package.json); the TLS probes choose for themselves. */
const { EVOSEARCH_INSECURE: _insecure, ...strictEnv } = process.env;
const tls = (dir: string, name: string, ca = join(dir, 'ca.crt')) => ['--tls-ca', ca, '--tls-cert', join(dir, `${name}.crt`), '--tls-key', join(dir, `${name}.key`)];
const identity = (dir: string, name: string): TransportSecurity => ({ kind: 'mtls', identity: loadTlsIdentity({ ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }) });
const WORKER_SERVICE = 'evosearch.worker.v1.Worker';
const COORDINATOR_SERVICE = 'evosearch.coordinator.v1.Coordinator';

describe('gRPC health of real worker and coordinator processes, and `evosearch health`', () => {
  let nats: NatsServer;
  let dir: string;
  let certs: string;
  let otherCa: string;
  const workers: WorkerProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'evosearch-health-'));
    certs = join(dir, 'certs');
    otherCa = join(dir, 'other');
    assert.equal((await evosearch(['certs', '--out', certs, '--worker', 'w1', '--coordinator', 'c1', '--client', 'alice'], strictEnv)).code, 0);
    assert.equal((await evosearch(['certs', '--out', otherCa, '--client', 'mallory'], strictEnv)).code, 0);
  });
  after(async () => {
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a worker with --nats: SERVING under every name; NOT_SERVING, with the reason, while its registration is lost (/readyz 503), SERVING again after; a drain ends its watches', async () => {
    const worker = await startWorker('analytic:gmm', ['--nats', nats.url, '--metrics-listen', '127.0.0.1:0']);
    workers.push(worker);
    const client = healthClient(worker.address);
    try {
      for (const service of ['', 'liveness', WORKER_SERVICE]) assert.equal(await checkHealth(client, service), 'SERVING', service);
      assert.equal(await checkHealth(client, 'evosearch.Worker'), 'NOT_FOUND');
      const probe = await evosearch(['health', '--address', worker.address]);
      assert.deepEqual([probe.code, probe.stdout], [0, `${worker.address} '': SERVING\n`], probe.stderr);
      assert.equal((await httpRequest(worker.metrics!, '/readyz')).status, 200);

      const watch = watchHealth(client, '');
      await watch.seen('SERVING', 'the watch\'s first status', 0);
      const lost = watch.seen('NOT_SERVING', 'NOT_SERVING once NATS is gone');
      await nats.down();
      try {
        await lost;
        const notServing = await evosearch(['health', '--address', worker.address, '--timeout-ms', '3000']);
        assert.equal(notServing.code, 3, notServing.stderr);
        assert.match(notServing.stderr, new RegExp(`^evosearch: health of ${worker.address.replace(/\./g, '\\.')}: NOT_SERVING \\(nats: its (NATS connection is lost|heartbeat was not stored)`));
        const readyz = await httpRequest(worker.metrics!, '/readyz');
        assert.equal(readyz.status, 503);
        assert.match(readyz.body, /^not ready: nats: /);
        // Alive all the same: restarting it would not bring NATS back.
        assert.equal((await httpRequest(worker.metrics!, '/livez')).status, 200);
        assert.equal(await checkHealth(client, 'liveness'), 'SERVING');
        assert.equal(await checkHealth(client, WORKER_SERVICE), 'NOT_SERVING');
        assert.equal(sample(await scrape(worker.metrics!), 'evosearch_ready'), 0);
      } finally {
        const back = watch.seen('SERVING', 'SERVING once NATS is back and a heartbeat stored');
        await nats.up();
        await back;
      }
      assert.equal((await httpRequest(worker.metrics!, '/readyz')).status, 200);
      assert.equal(await checkHealth(client, WORKER_SERVICE), 'SERVING');

      const draining = watch.seen('NOT_SERVING', 'NOT_SERVING when the worker drains');
      worker.child.kill('SIGTERM');
      await draining;
      assert.equal(await watch.ended, grpc.status.OK, 'the drain ends the watch, so the server can shut down');
      assert.equal(await worker.exited, 0);
    } finally {
      client.close();
    }
  });

  it('over mTLS any certificate of the cluster\'s CA may ask, whatever its role; another CA\'s, or plaintext, is refused as TLS (exit 2); a dead address is unreachable (exit 3)', async () => {
    const worker = await startWorker('analytic:gmm', tls(certs, 'w1'));
    workers.push(worker);
    for (const [name, service] of [['alice', ''], ['w1', WORKER_SERVICE], ['c1', 'liveness']] as const) {
      const probe = await evosearch(['health', '--address', worker.address, '--service', service, ...tls(certs, name)], strictEnv);
      assert.equal(probe.code, 0, `${name}: ${probe.stderr}`);
    }
    // Another cluster's certificate, with a CA file that trusts both clusters: the handshake gets as far
    // as the server's refusal of the certificate (its CA is the first of the file, which signed it).
    const bothCas = join(dir, 'both-cas.crt');
    await writeFile(bothCas, Buffer.concat([await readFile(join(otherCa, 'ca.crt')), await readFile(join(certs, 'ca.crt'))]));
    const foreign = await evosearch(['health', '--address', worker.address, ...tls(otherCa, 'mallory', bothCas)], strictEnv);
    assert.equal(foreign.code, 2, foreign.stderr);
    assert.match(foreign.stderr, /^evosearch: health of [\d.:]+: TLS refused: the server closed the connection after the handshake: it does not take this process's certificate/);
    const untrusted = await evosearch(['health', '--address', worker.address, ...tls(otherCa, 'mallory')], strictEnv);
    assert.equal(untrusted.code, 2, untrusted.stderr);
    assert.match(untrusted.stderr, /TLS refused: this side does not trust the server's certificate \(is it signed by the CA of --tls-ca\?\): self-signed certificate in certificate chain/);
    const plaintext = await evosearch(['health', '--address', worker.address, '--insecure'], strictEnv);
    assert.equal(plaintext.code, 2, plaintext.stderr);
    assert.match(plaintext.stderr, /TLS refused: the server (speaks TLS|closed a plaintext connection)/);
    const dead = await evosearch(['health', '--address', '127.0.0.1:1', ...tls(certs, 'alice')], strictEnv);
    assert.equal(dead.code, 3, dead.stderr);
    assert.match(dead.stderr, /^evosearch: health of 127\.0\.0\.1:1: unreachable: connect ECONNREFUSED/);
    const unnamed = await evosearch(['health', '--address', worker.address, '--service', 'nope', ...tls(certs, 'alice')], strictEnv);
    assert.equal(unnamed.code, 2, unnamed.stderr);
    assert.match(unnamed.stderr, /no service of that name there/);
    const noCertificates = await evosearch(['health', '--address', worker.address], strictEnv);
    assert.equal(noCertificates.code, 2, 'no certificates and no --insecure: refused as for every gRPC command');
  });

  it('a coordinator over mTLS: SERVING under \'\' and its service name for any role, /readyz and /metrics on --metrics-listen, and a stop ends its watches after NOT_SERVING', async () => {
    const coordinator = await startCoordinator(nats.url, join(dir, 'runs'), [...tls(certs, 'c1'), '--metrics-listen', '127.0.0.1:0'], strictEnv);
    const exited = new Promise<number | null>((resolve) => coordinator.child.once('exit', resolve));
    const client = healthClient(coordinator.address, identity(certs, 'alice'));
    try {
      for (const [name, service] of [['alice', ''], ['w1', COORDINATOR_SERVICE]] as const) {
        const probe = await evosearch(['health', '--address', coordinator.address, '--service', service, ...tls(certs, name)], strictEnv);
        assert.equal(probe.code, 0, `${name}: ${probe.stderr}`);
      }
      assert.equal((await httpRequest(coordinator.metrics!, '/readyz')).status, 200);
      const samples = await scrape(coordinator.metrics!);
      for (const state of ['queued', 'running', 'finished', 'failed', 'cancelled', 'interrupted']) assert.equal(sample(samples, `evosearch_coordinator_runs{state="${state}"}`), 0, state);
      assert.deepEqual([sample(samples, 'evosearch_coordinator_workers_wanted'), sample(samples, 'evosearch_coordinator_queue_depth'), sample(samples, 'evosearch_ready')], [0, 0, 1]);
      const watch = watchHealth(client, COORDINATOR_SERVICE);
      await watch.seen('SERVING', 'the watch\'s first status', 0);
      const stopping = watch.seen('NOT_SERVING', 'NOT_SERVING when the coordinator stops');
      coordinator.child.kill('SIGTERM');
      await stopping;
      assert.equal(await watch.ended, grpc.status.OK);
      assert.equal(await exited, 0);
    } finally {
      client.close();
    }
  });
});

describe('a worker server in process: its health from the first moment', () => {
  it('waits for the model, fails liveness while its event loop is held up, and ends its watches when it closes', async () => {
    const health = new ProcessHealth({ [MODEL_CONDITION]: 'its model files are not read yet' }, { limitMs: 150, everyMs: 20, windowMs: 400 });
    const dir = await mkdtemp(join(tmpdir(), 'evosearch-health-state-'));
    const starting = WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', logger: pino({ level: 'silent' }), health, stateDir: dir });
    assert.deepEqual(health.status(), { live: true, ready: false, reasons: ['model: its model files are not read yet'] });
    const server = await starting;
    const client = healthClient(server.address);
    try {
      assert.deepEqual(health.status(), { live: true, ready: true, reasons: [] });
      const liveness = watchHealth(client, 'liveness');
      const overall = watchHealth(client, '');
      await liveness.seen('SERVING', 'the first liveness status', 0);
      await overall.seen('SERVING', 'the first overall status', 0);
      const stalled = liveness.seen('NOT_SERVING', 'liveness NOT_SERVING after the loop was held up');
      const notReady = overall.seen('NOT_SERVING', 'the process NOT_SERVING while not live');
      const until = performance.now() + 300;
      while (performance.now() < until) {
        // the event loop is held up: nothing else runs
      }
      await Promise.all([stalled, notReady]);
      await liveness.seen('SERVING', 'liveness SERVING again once the window has passed');
      await server.close();
      // A close is at once: the watches end, cancelled or not.
      assert.ok([grpc.status.OK, grpc.status.CANCELLED].includes(await overall.ended));
      assert.ok([grpc.status.OK, grpc.status.CANCELLED].includes(await liveness.ended));
      assert.equal(health.status().ready, false, 'a closed server is not ready');
    } finally {
      client.close();
      health.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
