/**
 * The pieces of metrics/ in one process, with real sockets and timers: the HTTP endpoint's paths,
 * methods and answers (/readyz 503 until ready, 200 after; 404 and 405 for anything else; a body
 * never read), one registry per server (two in one process keep their own counts), and the
 * event-loop liveness, which a loop held up past its limit fails for a while and then passes again.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsEndpoint } from '../metrics/http-endpoint.js';
import { EventLoopLiveness } from '../metrics/liveness.js';
import { ProcessHealth } from '../metrics/process-health.js';
import { processRegistry } from '../metrics/registry.js';
import { healthMetrics } from '../metrics/health-metrics.js';
import { WorkerMetrics, type WorkerCounts } from '../metrics/worker-metrics.js';
import { httpRequest, sample, scrape } from './support/http-get.js';

/** Keeps the event loop from running for `ms` (what a long synchronous piece of work does). */
function holdEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: nothing else runs
  }
}

/**
 * Resolves at the next change `onChange` reports. The liveness timer does not keep a process alive
 * (by design), so while the test waits for it something else must.
 */
const nextChange = (onChange: (listener: () => void) => () => void) => new Promise<void>((resolve) => {
  const keepAlive = setInterval(() => undefined, 1000);
  const off = onChange(() => {
    off();
    clearInterval(keepAlive);
    resolve();
  });
});

describe('the metrics endpoint: /metrics, /livez, /readyz and nothing else', () => {
  const opened: { endpoint: MetricsEndpoint; health: ProcessHealth }[] = [];
  const open = async (waitingFor: Record<string, string>) => {
    const health = new ProcessHealth(waitingFor);
    const registry = processRegistry();
    healthMetrics(registry, health);
    const endpoint = await MetricsEndpoint.start('127.0.0.1', 0, registry, health);
    opened.push({ endpoint, health });
    return { endpoint, health, registry };
  };
  after(async () => {
    for (const { endpoint, health } of opened) {
      await endpoint.close();
      health.close();
    }
  });

  it('/readyz answers 503 with the reasons until every condition is met, then 200; /livez 200 all along', async () => {
    const { endpoint, health } = await open({ model: 'its model files are not read yet', nats: 'it is not registered in NATS yet' });
    const waiting = await httpRequest(endpoint.address, '/readyz');
    assert.equal(waiting.status, 503);
    assert.match(waiting.body, /^not ready: model: its model files are not read yet; nats: it is not registered in NATS yet\n$/);
    assert.equal(sample(await scrape(endpoint.address), 'evosearch_ready'), 0);
    assert.equal((await httpRequest(endpoint.address, '/livez')).status, 200);
    health.readiness.met('model');
    assert.match((await httpRequest(endpoint.address, '/readyz')).body, /^not ready: nats:/);
    health.readiness.met('nats');
    const ready = await httpRequest(endpoint.address, '/readyz');
    assert.deepEqual([ready.status, ready.body, ready.headers['cache-control']], [200, 'ready\n', 'no-store']);
    assert.equal(sample(await scrape(endpoint.address), 'evosearch_ready'), 1);
    health.readiness.unmetBecause('drain', 'it is draining');
    assert.equal((await httpRequest(endpoint.address, '/readyz')).status, 503);
  });

  it('/metrics is Prometheus text with the process metrics; other paths are 404, other methods 405, HEAD has no body', async () => {
    const { endpoint } = await open({});
    const metrics = await httpRequest(endpoint.address, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.body, /^process_cpu_user_seconds_total \d/m);
    assert.match(metrics.body, /^nodejs_eventloop_lag_seconds \d/m);
    assert.match(metrics.body, /^evosearch_ready 1$/m);
    for (const path of ['/', '/metrics/', '/metricsx', '/readyz/x', '/../metrics', '/favicon.ico']) assert.equal((await httpRequest(endpoint.address, path)).status, 404, path);
    assert.equal((await httpRequest(endpoint.address, '/metrics?name=x')).status, 200, 'a query string is ignored');
    const head = await httpRequest(endpoint.address, '/readyz', 'HEAD');
    assert.deepEqual([head.status, head.body], [200, '']);
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const refused = await httpRequest(endpoint.address, '/metrics', method, 'x'.repeat(100_000));
      assert.equal(refused.status, 405, method);
      assert.equal(refused.headers.allow, 'GET, HEAD');
      // The body was not read: the connection ends with the answer instead.
      assert.equal(refused.headers.connection, 'close', method);
    }
  });

  it('two servers in one process keep their own registries', async () => {
    const counts = (nfe: number): WorkerCounts => ({ runs: 1, batchesInFlight: 0, batches: 2, nfe, busyMs: 1500, modelMs: 1000 });
    const a = await open({});
    const b = await open({});
    let nfeA = 10;
    new WorkerMetrics(a.registry, () => counts(nfeA));
    const metricsB = new WorkerMetrics(b.registry, () => counts(99));
    metricsB.wire.sent(1234);
    const [first, other] = [await scrape(a.endpoint.address), await scrape(b.endpoint.address)];
    assert.deepEqual([sample(first, 'evosearch_worker_nfe_total'), sample(other, 'evosearch_worker_nfe_total')], [10, 99]);
    assert.deepEqual([sample(first, 'evosearch_worker_wire_sent_bytes_total'), sample(other, 'evosearch_worker_wire_sent_bytes_total')], [0, 1234]);
    assert.equal(sample(first, 'evosearch_worker_busy_seconds_total'), 1.5);
    nfeA = 25;
    assert.equal(sample(await scrape(a.endpoint.address), 'evosearch_worker_nfe_total'), 25, 'the counter follows the total');
  });

  it('listening on a port in use fails with an error of the project\'s model (io)', async () => {
    const { endpoint } = await open({});
    const port = Number(endpoint.address.split(':')[1]);
    await assert.rejects(MetricsEndpoint.start('127.0.0.1', port, processRegistry(), new ProcessHealth({})), (e: Error & { code?: string }) => e.code === 'io' && /cannot serve metrics on 127\.0\.0\.1:\d+/.test(e.message));
  });
});

describe('event-loop liveness', () => {
  it('a loop held up past the limit is not live for the window, then live again', async () => {
    const liveness = new EventLoopLiveness({ limitMs: 150, everyMs: 20, windowMs: 400 });
    try {
      assert.equal(liveness.live, true);
      const flipped = nextChange((l) => liveness.onChange(l));
      holdEventLoop(300);
      // The stall is seen as it builds up, before any tick: a probe answered right now says so.
      assert.equal(liveness.live, false);
      await flipped;
      assert.equal(liveness.live, false);
      assert.match(liveness.reason ?? '', /^the event loop was held up for \d+\.\d s \(more than 0\.\d s\) within the last \d+ s$/);
      await nextChange((l) => liveness.onChange(l));
      assert.equal(liveness.live, true);
      assert.equal(liveness.reason, null);
    } finally {
      liveness.stop();
    }
  });

  it('a loop held up for less than the limit stays live', async () => {
    const liveness = new EventLoopLiveness({ limitMs: 400, everyMs: 20, windowMs: 400 });
    try {
      holdEventLoop(100);
      // The tick that measures the stall.
      await new Promise((resolve) => setTimeout(resolve, 40));
      assert.equal(liveness.live, true);
    } finally {
      liveness.stop();
    }
  });
});
