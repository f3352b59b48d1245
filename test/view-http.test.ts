/**
 * The live view's HTTP API against real processes, no browser: a coordinator serving it over HTTPS
 * with its certificate (NATS, one analytic worker over mutual TLS), runs submitted by alice's client
 * certificate, and callers by certificate and by token. Who may see what is the gRPC API's rule: no
 * credentials or a wrong token is 401, a certificate of another CA is no identity (401), a worker's is
 * 403, bob's calls on alice's run are 404 whatever the endpoint, an admin sees every run. Hostile
 * requests: path traversal in any part of the URL, bodies past 1 KiB, the wrong method, too many
 * event streams (429). Plaintext is refused on a non-loopback address. `evosearch token` keeps hashes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CoordinatorClient } from '../coordinator/service/coordinator-client.js';
import type { TransportSecurity } from '../proto/transport-security.js';
import { loadTlsIdentity } from '../security/tls-identity.js';
import { evosearch } from './support/evosearch-cli.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startServing, type ServingProcess } from './support/view-browser.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';
import { waitFor } from './support/wait-for.js';

const { EVOSEARCH_INSECURE: _insecure, ...strictEnv } = process.env;
const tls = (dir: string, name: string) => ['--tls-ca', join(dir, 'ca.crt'), '--tls-cert', join(dir, `${name}.crt`), '--tls-key', join(dir, `${name}.key`)];
const identity = (dir: string, name: string): TransportSecurity => ({ kind: 'mtls', identity: loadTlsIdentity({ ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }) });

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  json(): Record<string, unknown>;
}

interface Ask {
  readonly method?: string;
  readonly token?: string;
  /** A client certificate: the folder and the peer's name. */
  readonly cert?: { readonly dir: string; readonly name: string };
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  /** Stop reading after the headers (an event stream that stays open). */
  readonly headOnly?: boolean;
}

/** One HTTPS request to the view, the path sent exactly as given (no client-side normalising). */
function ask(base: string, path: string, options: Ask = {}): Promise<Reply> {
  const url = new URL(base);
  const secure = url.protocol === 'https:';
  const request: RequestOptions = {
    host: url.hostname,
    port: url.port,
    path,
    method: options.method ?? 'GET',
    headers: { ...(options.token !== undefined ? { Authorization: `Bearer ${options.token}` } : {}), ...options.headers },
    ...(secure ? { rejectUnauthorized: false, servername: 'evosearch-view' } : {}),
    ...(options.cert !== undefined ? { cert: readFileSync(join(options.cert.dir, `${options.cert.name}.crt`)), key: readFileSync(join(options.cert.dir, `${options.cert.name}.key`)) } : {}),
    agent: false,
  };
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(request, (res) => {
      if (options.headOnly) {
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.alloc(0), json: () => ({}) });
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString()) as Record<string, unknown> });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The names of a tar archive's entries (ustar headers, 512-byte blocks). */
function tarNames(tar: Buffer): string[] {
  const names: string[] = [];
  for (let at = 0; at + 512 <= tar.length; ) {
    const name = tar.subarray(at, at + 100).toString().replace(/\0.*$/s, '');
    if (name === '') break;
    const size = parseInt(tar.subarray(at + 124, at + 136).toString().replace(/\0.*$/s, '').trim(), 8);
    names.push(name);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

describe('the live view over HTTPS: the coordinator API\'s callers and rules, and hostile requests', () => {
  let dir: string;
  let certs: string;
  let otherCa: string;
  let nats: NatsServer;
  let worker: WorkerProcess;
  let coordinator: ServingProcess;
  let view: string;
  let runsDir: string;
  const tokens: Record<string, string> = {};
  let finishedRun: string;
  let runningRun: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'evosearch-view-http-'));
    certs = join(dir, 'certs');
    otherCa = join(dir, 'other');
    assert.equal((await evosearch(['certs', '--out', certs, '--coordinator', 'c1', '--worker', 'w1', '--client', 'alice', '--client', 'bob', '--admin', 'ops'], strictEnv)).code, 0);
    // Another CA's certificate that calls itself alice.
    assert.equal((await evosearch(['certs', '--out', otherCa, '--client', 'alice'], strictEnv)).code, 0);
    const file = join(dir, 'tokens.json');
    for (const [name, role] of [['alice', 'client'], ['bob', 'client'], ['ops', 'admin']] as const) {
      const made = await evosearch(['token', '--tokens', file, '--name', name, '--role', role, '--url', 'https://coord.example:7080/'], strictEnv);
      assert.equal(made.code, 0, made.stderr);
      tokens[name] = /^(evs_\S+)$/m.exec(made.stdout)![1]!;
      assert.match(made.stdout, new RegExp(`^https://coord\\.example:7080/#token=${tokens[name]}$`, 'm'));
    }
    nats = await startNatsServer();
    runsDir = join(dir, 'served');
    worker = await startWorker('analytic:gmm', ['--nats', nats.url, ...tls(certs, 'w1')]);
    coordinator = await startServing(['coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--runs-dir', runsDir, '--log-level', 'error', '--view-listen', '127.0.0.1:0', '--view-tokens', file, ...tls(certs, 'c1')], ['listening', 'view'], strictEnv);
    view = coordinator.lines.get('view')!.url as string;
    const alice = new CoordinatorClient(coordinator.lines.get('listening')!.address as string, identity(certs, 'alice'), 30_000);
    try {
      ({ runId: finishedRun } = await alice.submit({ budgetNfe: 1500, seed: 2 }));
      await alice.watch(finishedRun, () => undefined);
      // Twenty rounds of a fraction of a second: running through the tests below, until alice cancels it.
      const steps = Array.from({ length: 20 }, (_, i) => 2 * i);
      ({ runId: runningRun } = await alice.submit({ seed: 3, evosearch: { evolutionSchedule: steps, populationSchedule: [...steps, 40].map(() => 3000) } }));
    } finally {
      alice.close();
    }
  });
  after(async () => {
    await coordinator?.stop();
    await stopWorkers(worker ? [worker] : []);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('the page is served to anyone, with its security headers; every API call needs credentials (401)', async () => {
    const page = await ask(view, '/');
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<script type="module" src="\/app\.js">/);
    for (const reply of [page, await ask(view, '/api/runs')]) {
      assert.match(String(reply.headers['content-security-policy']), /^default-src 'self'/);
      assert.equal(reply.headers['x-content-type-options'], 'nosniff');
    }
    for (const options of [{}, { token: 'evs_' + 'A'.repeat(43) }, { token: 'not-a-token' }, { headers: { Authorization: 'Basic YWxpY2U6eA==' } }, { cert: { dir: otherCa, name: 'alice' } }] as Ask[]) {
      const reply = await ask(view, '/api/runs', options);
      assert.equal(reply.status, 401, JSON.stringify(options));
      assert.equal(typeof reply.json().error, 'string');
      assert.equal((await ask(view, `/api/runs/${finishedRun}`, options)).status, 401);
    }
    const workerCert = await ask(view, '/api/runs', { cert: { dir: certs, name: 'w1' } });
    assert.equal(workerCert.status, 403);
    assert.match(String(workerCert.json().error), /serves client and admin peers; this certificate is worker 'w1'/);
  });

  it("alice sees her runs by token and by certificate; bob's every call on them is 404; an admin sees all", async () => {
    const ids = (reply: Reply) => (reply.json().runs as { runId: string }[]).map((r) => r.runId).sort();
    const both = [finishedRun, runningRun].sort();
    assert.deepEqual(ids(await ask(view, '/api/runs', { token: tokens.alice })), both);
    assert.deepEqual(ids(await ask(view, '/api/runs', { cert: { dir: certs, name: 'alice' } })), both);
    assert.deepEqual(ids(await ask(view, '/api/runs', { token: tokens.ops })), both);
    assert.deepEqual(ids(await ask(view, '/api/runs', { cert: { dir: certs, name: 'ops' } })), both);
    const who = (await ask(view, '/api/whoami', { cert: { dir: certs, name: 'alice' } })).json();
    assert.deepEqual([who.name, who.role], ['alice', 'client']);
    for (const bob of [{ token: tokens.bob }, { cert: { dir: certs, name: 'bob' } }] as Ask[]) {
      assert.deepEqual(ids(await ask(view, '/api/runs', bob)), []);
      for (const run of [finishedRun, runningRun]) {
        for (const [method, path] of [['GET', ''], ['GET', '/events'], ['POST', '/cancel'], ['GET', '/download'], ['GET', '/thumbnails/0/0.png']] as const) {
          const reply = await ask(view, `/api/runs/${run}${path}`, { ...bob, method });
          assert.equal(reply.status, 404, `bob ${method} ${path}: ${reply.status}`);
          assert.match(String(reply.json().error), /^no run /);
        }
      }
    }
    // Bob's cancel did nothing: alice's run still runs.
    assert.equal(((await ask(view, `/api/runs/${runningRun}`, { token: tokens.alice })).json().run as { state: string }).state, 'running');
  });

  it('refuses path traversal in any part of the URL, bodies past 1 KiB and the wrong method', async () => {
    const alice = { token: tokens.alice };
    for (const path of ['/../../etc/passwd', '/api/runs/../../../etc/passwd', '/api/runs/%2e%2e/%2e%2e/etc/passwd', '/api/runs/..%2F..%2Fetc%2Fpasswd', `/api/runs/${finishedRun}/thumbnails/0/..%2F..%2Frecord.json`, `/api/runs/${finishedRun}/../${runningRun}`, '/api/runs/not-a-uuid', `/api/runs/${finishedRun.toUpperCase()}`, '/app.js/../../package.json', '/%00', `/api/runs/${finishedRun}\\..\\x`, '//etc/passwd', `/api/runs/${finishedRun}/thumbnails/-1/0.png`, `/api/runs/${finishedRun}/thumbnails/0/1e3.png`]) {
      const reply = await ask(view, path, alice);
      assert.ok(reply.status === 400 || reply.status === 404, `${path}: ${reply.status}`);
      assert.ok(!reply.body.toString().includes('root:'), path);
    }
    const big = await ask(view, `/api/runs/${runningRun}/cancel`, { ...alice, method: 'POST', body: Buffer.alloc(2048, 'x') });
    assert.equal(big.status, 413);
    const chunked = await ask(view, '/api/runs', { ...alice, headers: { 'Transfer-Encoding': 'chunked' }, body: Buffer.alloc(4096, 'y') });
    assert.equal(chunked.status, 413);
    assert.equal((await ask(view, `/api/runs/${runningRun}/cancel`, alice)).status, 405, 'cancel is POST only');
    assert.equal((await ask(view, '/api/runs', { ...alice, method: 'POST' })).status, 405);
    assert.equal((await ask(view, '/', { method: 'DELETE' })).status, 405);
    assert.equal(((await ask(view, `/api/runs/${runningRun}`, alice)).json().run as { state: string }).state, 'running', 'the refused requests cancelled nothing');
  });

  it('a principal holds a bounded number of event streams (429 past it); alice cancels her running run over HTTP', async () => {
    const open: Promise<Reply>[] = [];
    for (let i = 0; i < 8; i++) open.push(ask(view, `/api/runs/${runningRun}/events`, { token: tokens.alice, headOnly: true }));
    assert.deepEqual((await Promise.all(open)).map((r) => r.status), new Array(8).fill(200));
    const ninth = await ask(view, `/api/runs/${runningRun}/events`, { cert: { dir: certs, name: 'alice' } });
    assert.equal(ninth.status, 429, 'the same principal by certificate counts too');
    assert.match(String(ninth.json().error), /alice \(client, certificate\) has 8 event streams open/);
    assert.equal((await ask(view, `/api/runs/${runningRun}/events`, { token: tokens.ops, headOnly: true })).status, 200, 'another principal is not held back');
    // After a round or two, so the checkpoint below has rounds to agree with.
    await waitFor(() => existsSync(join(runsDir, runningRun, 'checkpoint.json')), 60_000, "the running run's first round");
    const cancelled = await ask(view, `/api/runs/${runningRun}/cancel`, { token: tokens.alice, method: 'POST' });
    assert.equal(cancelled.status, 200, cancelled.body.toString());
    await waitFor(async () => ((await ask(view, `/api/runs/${runningRun}`, { token: tokens.alice })).json().run as { state: string }).state === 'cancelled', 60_000, 'the run cancelled');
    const again = await ask(view, `/api/runs/${runningRun}/cancel`, { token: tokens.alice, method: 'POST' });
    assert.equal(again.status, 409, 'an ended run has nothing to cancel');
    const manifest = JSON.parse(await readFile(join(runsDir, runningRun, 'checkpoint.json'), 'utf8')) as { rounds: number };
    const events = (await readFile(join(runsDir, runningRun, 'events.jsonl'), 'utf8')).trim().split('\n').map((l) => Object.keys(JSON.parse(l) as object).find((k) => k !== 'runId' && k !== 'at'));
    assert.equal(events.at(-1), 'cancelled');
    assert.equal(events.filter((k) => k === 'round').length, manifest.rounds, 'cancelled between rounds: every reported round checkpointed, nothing more');
    assert.ok(!existsSync(join(runsDir, runningRun, 'record.json')));
  });

  it("a finished run: its events end with it, its folder downloads as .tar.gz (the Files set), an unfinished one's does not", async () => {
    const events = await ask(view, `/api/runs/${finishedRun}/events`, { token: tokens.alice });
    assert.equal(events.status, 200);
    assert.match(String(events.headers['content-type']), /^application\/x-ndjson/);
    const lines = events.body.toString().trim().split('\n').map((l) => JSON.parse(l) as { type: string; event?: { event: string; payload: Record<string, unknown> }; state?: string });
    assert.deepEqual([lines[0]!.event!.event, lines.at(-2)!.event!.event, lines.at(-1)], ['started', 'finished', { type: 'end', state: 'finished' }]);
    const round = lines.find((l) => l.event?.event === 'round')!.event!.payload as { detail?: { population: unknown[]; workers: unknown[]; generation: number } };
    assert.ok(round.detail !== undefined && round.detail.population.length > 0 && round.detail.workers.length === 1, JSON.stringify(round).slice(0, 300));
    const download = await ask(view, `/api/runs/${finishedRun}/download`, { cert: { dir: certs, name: 'alice' } });
    assert.equal(download.status, 200);
    assert.equal(download.headers['content-type'], 'application/gzip');
    const names = tarNames(gunzipSync(download.body));
    for (const f of ['record.json', 'config.json', 'journal.jsonl']) assert.ok(names.includes(`${finishedRun}/${f}`), `${f} in ${names.join(', ')}`);
    for (const f of ['served.json', 'events.jsonl', '.evosearch.lock']) assert.ok(!names.includes(`${finishedRun}/${f}`), `the service's own ${f} is not sent`);
    const admin = await ask(view, `/api/runs/${finishedRun}/download`, { token: tokens.ops });
    assert.equal(admin.status, 200);
    const early = await ask(view, `/api/runs/${runningRun}/download`, { token: tokens.alice });
    assert.equal(early.status, 409);
    assert.match(String(early.json().error), /is cancelled; its files come when it has finished/);
  });

  it('plaintext is loopback only: a coordinator or evosearch view asked to serve it elsewhere refuses', async () => {
    const coordinatorOpen = await evosearch(['coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--runs-dir', join(dir, 'plain'), '--insecure', '--view-listen', '0.0.0.0:0'], strictEnv);
    assert.equal(coordinatorOpen.code, 2, coordinatorOpen.stderr);
    assert.match(coordinatorOpen.stderr, /cannot serve the view in plaintext HTTP on 0\.0\.0\.0:0: plaintext is for loopback addresses only/);
    const viewOpen = await evosearch(['view', join(runsDir, finishedRun), '--listen', '0.0.0.0:0'], strictEnv);
    assert.equal(viewOpen.code, 2, viewOpen.stderr);
    assert.match(viewOpen.stderr, /plaintext is for loopback addresses only/);
  });
  it('evosearch token keeps only hashes, in a file its owner alone may read, and refuses a name twice unless --replace', async () => {
    const file = join(dir, 'tokens.json');
    const text = await readFile(file, 'utf8');
    for (const token of Object.values(tokens)) assert.ok(!text.includes(token), 'no token in the file');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const again = await evosearch(['token', '--tokens', file, '--name', 'bob'], strictEnv);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /has a token for 'bob' already; add --replace/);
    const spare = join(dir, 'spare-tokens.json');
    const first = await evosearch(['token', '--tokens', spare, '--name', 'carol'], strictEnv);
    const second = await evosearch(['token', '--tokens', spare, '--name', 'carol', '--replace'], strictEnv);
    assert.equal(second.code, 0, second.stderr);
    const entries = (JSON.parse(await readFile(spare, 'utf8')) as { tokens: { name: string }[] }).tokens;
    assert.deepEqual(entries.map((e) => e.name), ['carol']);
    assert.notEqual(/^(evs_\S+)$/m.exec(first.stdout)![1], /^(evs_\S+)$/m.exec(second.stdout)![1]);
  });

});
