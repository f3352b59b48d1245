import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { connectNats, NatsUnavailableError } from '../cluster/nats-connection.js';
import { NatsAccessError, type NatsAccess } from '../cluster/nats-access.js';
import { COORDINATORS_BUCKET, liveWorkers, STALE_AFTER_MS, WORKERS_BUCKET } from '../cluster/worker-registry.js';
import { CHECKPOINTS_BUCKET } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { memberToJson } from '../proto/coordinator-messages.js';
import { EVOSEARCH_BIN, evosearch } from './support/evosearch-cli.js';
import { repoRoot } from './support/repo-root.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { operatorWithUser } from './support/nats-operator.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const RUN = ['run', '--budget-nfe', '2000', '--seed', '6', '--no-progress'];
const secret = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;
const withCredentials = (url: string, user: string, password: string) => url.replace('nats://', `nats://${user}:${encodeURIComponent(password)}@`);

/** The NATS server configuration docs/cluster-security.md gives, read from it: the test runs what the page says. */
function documentedConfig(): string {
  const page = readFileSync(join(repoRoot(), 'docs', 'cluster-security.md'), 'utf8');
  const block = /<!-- evosearch-nats-config: begin -->\n```conf\n([\s\S]*?)```\n<!-- evosearch-nats-config: end -->/.exec(page);
  assert.ok(block, 'docs/cluster-security.md has no marked configuration block');
  return block[1]!;
}

/** Every file under `folder`, its text. */
function filesUnder(folder: string): { file: string; text: string }[] {
  return readdirSync(folder, { recursive: true, encoding: 'utf8' })
    .map((name) => join(folder, name))
    .filter((file) => statSync(file).isFile())
    .map((file) => ({ file, text: readFileSync(file, 'latin1') }));
}

function assertNowhere(secrets: readonly string[], places: readonly { file: string; text: string }[]): void {
  for (const s of secrets) for (const { file, text } of places) assert.ok(!text.includes(s), `${file} holds a secret`);
}

interface Coordinator {
  readonly child: ChildProcess;
  readonly address: string;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

async function startCoordinator(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Coordinator> {
  const child = spawn(process.execPath, [EVOSEARCH_BIN, 'coordinator', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = await Promise.race([new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve)), exited.then((code) => Promise.reject(new Error(`coordinator exited with ${code}: ${stderr}`)))]);
  return { child, address: (JSON.parse(line) as { address: string }).address, stderr: () => stderr, exited };
}

describe("NATS users and permissions: the server configuration of docs/cluster-security.md (real nats-server)", () => {
  const passwords = { worker: secret('worker'), coordinator: secret('coordinator'), client: secret('client') };
  let nats: NatsServer;
  let dir: string;
  const workers: WorkerProcess[] = [];
  const connections: NatsConnection[] = [];
  const as = async (user: keyof typeof passwords, access: NatsAccess = { user, password: passwords[user] }) => {
    const nc = await connectNats(nats.url, `security test, ${user}`, access);
    connections.push(nc);
    return nc;
  };
  const envAs = (user: keyof typeof passwords): NodeJS.ProcessEnv => ({ ...process.env, EVOSEARCH_NATS_USER: user, EVOSEARCH_NATS_PASSWORD: passwords[user] });

  before(async () => {
    nats = await startNatsServer({ config: documentedConfig(), env: { EVOSEARCH_WORKER_PASSWORD: passwords.worker, EVOSEARCH_COORDINATOR_PASSWORD: passwords.coordinator, EVOSEARCH_CLIENT_PASSWORD: passwords.client } });
    dir = await mkdtemp(join(tmpdir(), 'cluster-security-'));
  });
  after(async () => {
    await stopWorkers(workers);
    for (const nc of connections) await nc.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('no credentials, or a wrong password, are refused, and the message names who was tried, never the password', async () => {
    await assert.rejects(connectNats(nats.url, 'nobody', {}), (e: unknown) => e instanceof NatsUnavailableError && /^NATS at nats:\/\/127\.0\.0\.1:\d+ refused this process \(no credentials\): Authorization Violation; give the cluster's credentials/.test(e.message));
    const wrong = secret('wrong');
    const refused = await evosearch([...RUN, '--cluster', withCredentials(nats.url, 'client', wrong), '--out', join(dir, 'never')]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /refused this process \(user 'client' \(password\)\): Authorization Violation/);
    assert.ok(!refused.stderr.includes(wrong) && !refused.stdout.includes(wrong), 'the wrong password is shown');
    const half = await evosearch([...RUN, '--cluster', nats.url, '--nats-password', wrong, '--out', join(dir, 'never')]);
    assert.equal(half.code, 2, half.stderr);
    assert.match(half.stderr, /NATS credentials: a password needs its user \(--nats-user, EVOSEARCH_NATS_USER, or nats:\/\/user:password@host\)/);
    await assert.rejects(connectNats(nats.url, 'two ways', { user: 'client', password: 'x', token: 'y' }), (e: unknown) => e instanceof NatsAccessError && /give one of a user and password, a token or a credentials file, not a user and a token/.test(e.message));
  });

  it('a worker registers as its user (credentials in the URL); workers may not touch checkpoints; clients may not put into either registry', async () => {
    const worker = await startWorker('analytic:gmm', ['--nats', withCredentials(nats.url, 'worker', passwords.worker)]);
    workers.push(worker);
    assert.ok(!worker.log().includes(passwords.worker), 'the worker logged its password');
    const client = await as('client');
    assert.deepEqual((await liveWorkers(client)).map((w) => w.address), [worker.address]);
    const member = JSON.stringify(memberToJson({ id: 'forged', address: '127.0.0.1:1', model: 'analytic:gmm', build: worker.build, startedAt: '', heartbeatAt: new Date().toISOString() }));
    await assert.rejects(new Kvm(client).open(WORKERS_BUCKET).then((kv) => kv.put('forged', member)), /Permissions Violation for Publish to "\$KV\.evosearch-workers\.forged"/);
    await (await new Kvm(await as('coordinator')).create(COORDINATORS_BUCKET, { history: 1 })).put('real', member);
    await assert.rejects(new Kvm(client).open(COORDINATORS_BUCKET).then((kv) => kv.put('forged', member)), /Permissions Violation for Publish to "\$KV\.evosearch-coordinators\.forged"/);
    assert.ok(!(await liveWorkers(client)).some((w) => w.id === 'forged'));
    await assert.rejects(new Objm(await as('worker')).create(CHECKPOINTS_BUCKET), /Permissions Violation/);
  });

  it('a coordinator and a client, each as its user: the run goes through the coordinator, and no password is written anywhere', async () => {
    const served = join(dir, 'served');
    const coordinator = await startCoordinator(['--nats', withCredentials(nats.url, 'coordinator', passwords.coordinator), '--runs-dir', served], process.env);
    try {
      const folder = join(dir, 'via-coordinator');
      const run = await evosearch([...RUN, '--cluster', nats.url, '--out', folder], envAs('client'));
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`submitted run [0-9a-f-]+ to coordinator ${coordinator.address}`));
      const config = JSON.parse(await readFile(join(folder, 'config.json'), 'utf8')) as { cluster: string };
      assert.equal(config.cluster, nats.url);
      coordinator.child.kill('SIGTERM');
      await coordinator.exited;
      assertNowhere(Object.values(passwords), [...filesUnder(folder), ...filesUnder(served), { file: 'the client output', text: run.stdout + run.stderr }, { file: "the coordinator's log", text: coordinator.stderr() }]);
    } finally {
      coordinator.child.kill('SIGKILL');
    }
  });

  it("a client with no coordinator runs the search itself; its sweep of a stale worker is refused by the server and warned about, and the run goes on", async () => {
    const doomed = await startWorker('analytic:gmm', ['--nats', withCredentials(nats.url, 'worker', passwords.worker)]);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    // The scenario: the killed worker's entry has to grow stale, and only time does that.
    await sleep(STALE_AFTER_MS + 500);
    const folder = join(dir, 'client-itself');
    const run = await evosearch([...RUN, '--cluster', withCredentials(nats.url, 'client', passwords.client), '--out', folder]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /stale entries of evosearch-workers not swept \(NATS KV bucket evosearch-workers: cannot remove key [^ ]+ \(Permissions Violation for Publish to \\?"\$JS\.API\.STREAM\.PURGE\.KV_evosearch-workers\\?"; what this NATS user may do is the server's configuration: docs\/cluster-security\.md\)\); they are passed over all the same/);
    const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as { workers: string[]; plan: { cluster: string } };
    assert.deepEqual(record.workers.map((w) => w.split(' ')[0]), [workers[0]!.address], 'the stale worker was used');
    assert.equal(record.plan.cluster, nats.url);
    assertNowhere([passwords.client], [...filesUnder(folder), { file: 'the client output', text: run.stdout + run.stderr }]);
    // Its checkpoint is in the store, and another client resumes it from there.
    const { runId } = JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as { runId: string };
    const resumed = await evosearch(['resume', runId, '--cluster', nats.url, '--runs-dir', join(dir, 'elsewhere'), '--no-progress'], envAs('client'));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`fetched run ${runId}'s checkpoint from ${nats.url.replace(/[.]/g, '\\.')} into`));
  });

  it('a run configuration whose cluster URL holds credentials is refused before they can be written', async () => {
    const file = join(dir, 'run.yaml');
    await writeFile(file, `cluster: ${withCredentials(nats.url, 'client', passwords.client)}\nbudgetNfe: 2000\n`);
    const run = await evosearch(['run', '--config', file, '--no-progress', '--out', join(dir, 'never')]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /cluster.*must not hold credentials \(they would be written to config\.json, record\.json and the checkpoints\)/);
    assert.ok(!run.stderr.includes(passwords.client), 'the refusal shows the password');
  });
});

describe('a NATS server that requires a token (real nats-server)', () => {
  const token = secret('token');
  let nats: NatsServer;
  let dir: string;
  const workers: WorkerProcess[] = [];
  before(async () => {
    nats = await startNatsServer({ config: 'authorization { token: $EVOSEARCH_TEST_TOKEN }\n', env: { EVOSEARCH_TEST_TOKEN: token } });
    dir = await mkdtemp(join(tmpdir(), 'cluster-token-'));
  });
  after(async () => {
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a worker with the token in its URL and a run with it in EVOSEARCH_NATS_TOKEN work together; without it, refused; the token is written nowhere', async () => {
    const worker = await startWorker('analytic:gmm', ['--nats', nats.url.replace('nats://', `nats://${token}@`)]);
    workers.push(worker);
    const folder = join(dir, 'run');
    const run = await evosearch([...RUN, '--cluster', nats.url, '--out', folder], { ...process.env, EVOSEARCH_NATS_TOKEN: token });
    assert.equal(run.code, 0, run.stderr);
    assertNowhere([token], [...filesUnder(folder), { file: 'the run output', text: run.stdout + run.stderr }, { file: "the worker's log", text: worker.log() }]);
    const refused = await evosearch([...RUN, '--cluster', nats.url, '--out', join(dir, 'never')]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /refused this process \(no credentials\): Authorization Violation/);
    const flagged = await evosearch([...RUN, '--cluster', nats.url, '--nats-token', token, '--out', join(dir, 'flagged')]);
    assert.equal(flagged.code, 0, flagged.stderr);
  });
});

describe('a NATS credentials file (.creds) for an operator-mode server (real nats-server)', () => {
  let nats: NatsServer;
  let dir: string;
  let credsFile: string;
  const workers: WorkerProcess[] = [];
  before(async () => {
    const { config, creds } = operatorWithUser();
    nats = await startNatsServer({ config });
    dir = await mkdtemp(join(tmpdir(), 'cluster-creds-'));
    credsFile = join(dir, 'evosearch.creds');
    await writeFile(credsFile, creds, { mode: 0o600 });
  });
  after(async () => {
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a worker with --nats-creds and a run with EVOSEARCH_NATS_CREDS work together; without it, refused; a missing file is named', async () => {
    workers.push(await startWorker('analytic:gmm', ['--nats', nats.url, '--nats-creds', credsFile]));
    const run = await evosearch([...RUN, '--cluster', nats.url, '--out', join(dir, 'run')], { ...process.env, EVOSEARCH_NATS_CREDS: credsFile });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /on 1 worker/);
    const refused = await evosearch([...RUN, '--cluster', nats.url, '--out', join(dir, 'never')]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /refused this process \(no credentials\): Authorization Violation/);
    const missing = await evosearch([...RUN, '--cluster', nats.url, '--nats-creds', join(dir, 'no-such.creds'), '--out', join(dir, 'never')]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /--nats-creds \(or EVOSEARCH_NATS_CREDS\) .*no-such\.creds: cannot read it \(ENOENT/);
  });
});

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;

describe('TLS to NATS, with certificates made here by openssl (real nats-server)', { skip: openssl ? false : 'openssl is not installed: the certificates of this test are made with it' }, () => {
  let nats: NatsServer;
  let dir: string;
  let pki: Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string>;
  const workers: WorkerProcess[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cluster-tls-'));
    pki = makeCertificates(dir);
    const config = `tls {\n  cert_file: "${pki.serverCert}"\n  key_file: "${pki.serverKey}"\n  ca_file: "${pki.ca}"\n  verify: true\n}\n`;
    nats = await startNatsServer({ config });
  });
  after(async () => {
    await stopWorkers(workers);
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('without the CA the server is not trusted; without a client certificate it refuses; with both, workers and runs connect', async () => {
    await assert.rejects(connectNats(nats.url, 'no CA', {}), (e: unknown) => e instanceof NatsUnavailableError && /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+: .*(certificate|TLS|tls)/i.test(e.message));
    await assert.rejects(connectNats(nats.url, 'no client certificate', { caFile: pki.ca }), NatsUnavailableError);
    await assert.rejects(connectNats(nats.url, 'half a certificate', { caFile: pki.ca, certFile: pki.clientCert }), (e: unknown) => e instanceof NatsAccessError && /a client certificate needs its key/.test(e.message));
    const nc = await connectNats(nats.url, 'mTLS', { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey });
    await nc.close();
    workers.push(await startWorker('analytic:gmm', ['--nats', nats.url, '--nats-ca', pki.ca, '--nats-cert', pki.clientCert, '--nats-key', pki.clientKey]));
    const run = await evosearch([...RUN, '--cluster', nats.url, '--out', join(dir, 'run')], { ...process.env, EVOSEARCH_NATS_CA: pki.ca, EVOSEARCH_NATS_CERT: pki.clientCert, EVOSEARCH_NATS_KEY: pki.clientKey });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /on 1 worker/);
    const missing = await evosearch([...RUN, '--cluster', nats.url, '--nats-ca', join(dir, 'no-such-ca.pem'), '--out', join(dir, 'never')]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /--nats-ca \(or EVOSEARCH_NATS_CA\) .*no-such-ca\.pem: cannot read it \(ENOENT/);
  });
});

/**
 * A CA, a server certificate and a client certificate, signed by it: their PEM files in `dir`. The
 * server's names localhost too: the NATS client checks a server it dials by IP address against the
 * name 'localhost' (it sends no server name for an IP), as docs/cluster-security.md says.
 */
function makeCertificates(dir: string): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string> {
  const path = (name: string) => join(dir, name);
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path('ca-key.pem'), '-out', path('ca.pem'), '-days', '2', '-subj', '/CN=evosearch test CA');
  for (const [name, extensions] of [['server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'], ['client', 'extendedKeyUsage=clientAuth\n']] as const) {
    writeFileSync(path(`${name}.ext`), extensions);
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', path(`${name}-key.pem`), '-out', path(`${name}.csr`), '-subj', `/CN=evosearch test ${name}`);
    run('x509', '-req', '-in', path(`${name}.csr`), '-CA', path('ca.pem'), '-CAkey', path('ca-key.pem'), '-CAcreateserial', '-out', path(`${name}.pem`), '-days', '2', '-extfile', path(`${name}.ext`));
  }
  return { ca: path('ca.pem'), serverCert: path('server.pem'), serverKey: path('server-key.pem'), clientCert: path('client.pem'), clientKey: path('client-key.pem') };
}
