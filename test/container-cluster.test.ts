/**
 * The container images with real parts: NATS (localhost/evosearch-cluster-nats, the documented server
 * configuration), a coordinator and two tiny-sd workers (localhost/evosearch-cluster), all started by
 * testcontainers through podman's Docker-compatible API, secured as a real cluster (NATS users, mTLS
 * on every gRPC hop, a cluster key). A run submitted from this machine with the project's CLI must give
 * exactly the answer of the same run made here on local threads, and each container's HEALTHCHECK must
 * pass.
 *
 * Needs podman and the images (deploy/container/build-image.sh); without them it skips, saying so
 * (EVOSEARCH_REQUIRE_IMAGE=1, which .ci/run sets, makes that a failure). Containers use host networking
 * and are reached on 127.0.0.1 only: every server listens on port 0 and says where. podman's API comes
 * from DOCKER_HOST when that is set, else from a `podman system service` this test starts and ends by
 * its pid.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { StartedTestContainer } from 'testcontainers';
import { EVOSEARCH_BIN } from './support/evosearch-cli.js';
import { repoRoot } from './support/repo-root.js';

const IMAGE = process.env.EVOSEARCH_IMAGE ?? 'localhost/evosearch-cluster:latest';
const NATS_IMAGE = process.env.EVOSEARCH_NATS_IMAGE ?? 'localhost/evosearch-cluster-nats:latest';
/** The image's user (deploy/container/Containerfile): the secrets it reads must be its own. */
const IMAGE_UID = 10001;
const BUILD = 'deploy/container/build-image.sh';
const run = promisify(execFile);
const BUNDLES = join(repoRoot(), 'models', 'bundles');
const RUN = ['run', '--model', join(BUNDLES, 'tiny-sd'), '--prompt', 'two red circles left of a blue square', '--budget-nfe', '600', '--seed', '5', '--no-progress'];

function podman(args: readonly string[]) {
  return spawnSync('podman', args, { encoding: 'utf8', timeout: 60_000 });
}

/** Why this test cannot run here (no podman, no images, images of other sources), or null. */
function missing(): string | null {
  const version = podman(['--version']);
  if (version.error !== undefined || version.status !== 0) return `podman is not installed (Debian: apt-get install -y podman runc debootstrap; then ${BUILD})`;
  for (const image of [IMAGE, NATS_IMAGE]) {
    if (podman(['image', 'exists', image]).status !== 0) return `the image ${image} is not built: run ${BUILD} (about 2.5 minutes from nothing)`;
  }
  // The image must run this checkout's code, or the comparison below compares two programs.
  const inImage = podman(['run', '--rm', '--no-healthcheck', '--network', 'none', '--entrypoint', 'cat', IMAGE, '/opt/evosearch/dist-digest']);
  if (inImage.status !== 0) throw new Error(`podman cannot run ${IMAGE} (deploy/README.md says how podman is set up on such machines): ${inImage.stderr.trim()}`);
  const here = spawnSync(process.execPath, [join(repoRoot(), 'deploy', 'container', 'dist-digest.mjs'), join(repoRoot(), 'dist')], { encoding: 'utf8' });
  if (here.status !== 0) throw new Error(`deploy/container/dist-digest.mjs failed: ${here.stderr}`);
  const [a, b] = [inImage.stdout.trim(), here.stdout.trim()];
  if (a !== b) return `${IMAGE} holds other compiled code than this checkout's dist/ (${a} in the image, ${b} here): rebuild it with ${BUILD} (or, if dist/ holds files of deleted sources, rm -rf dist and compile again)`;
  return null;
}

/** podman's Docker-compatible API: DOCKER_HOST's, or a service started here on a socket in `dir`. */
async function podmanApi(dir: string): Promise<{ socket: string; stop: () => Promise<void> }> {
  if (process.env.DOCKER_HOST) return { socket: process.env.DOCKER_HOST, stop: async () => undefined };
  const path = join(dir, 'podman.sock');
  const child: ChildProcess = spawn('podman', ['system', 'service', '--time=0', `unix://${path}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid!, 'SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(10_000, undefined, { ref: false }).then(() => false)]))) process.kill(child.pid!, 'SIGKILL');
  };
  const ping = () => new Promise<boolean>((resolve) => {
    const req = request({ socketPath: path, path: '/_ping', timeout: 1000 }, (res) => resolve(res.statusCode === 200));
    req.on('error', () => resolve(false)).end();
  });
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    if (child.exitCode !== null) throw new Error(`podman system service exited with ${child.exitCode}: ${log}`);
    if (existsSync(path) && (await ping())) return { socket: `unix://${path}`, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`podman system service did not answer on ${path} within 20 s: ${log}`);
}

/** Waits for `pattern` in a container's output (collected by its log consumer), or fails with that output. */
async function lineOf(name: string, output: () => string, pattern: RegExp, ms = 60_000): Promise<RegExpExecArray> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(50)) {
    const match = pattern.exec(output());
    if (match !== null) return match;
  }
  throw new Error(`${name} printed no ${pattern} within ${ms / 1000} s; its output:\n${output()}`);
}

describe('container images: a cluster of containers (testcontainers on podman)', () => {
  it('NATS, a coordinator and two workers in containers, over mTLS: a run submitted from here gives the local run\'s answer', async (t: TestContext) => {
    const why = missing();
    if (why !== null) {
      if (process.env.EVOSEARCH_REQUIRE_IMAGE === '1') assert.fail(`EVOSEARCH_REQUIRE_IMAGE=1, but: ${why}`);
      return t.skip(why);
    }
    const started = Date.now();
    const dir = await mkdtemp(join(tmpdir(), 'container-cluster-'));
    const api = await podmanApi(dir);
    const containers: { name: string; container: StartedTestContainer; output: () => string }[] = [];
    try {
      // testcontainers reads these when it first talks to the runtime: no Ryuk (it would be pulled),
      // and containers are reached on 127.0.0.1, never on a bridge's address.
      process.env.DOCKER_HOST = api.socket;
      process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
      process.env.TESTCONTAINERS_HOST_OVERRIDE = '127.0.0.1';
      const { GenericContainer, Wait } = await import('testcontainers');
      const neverPull = { shouldPull: () => false };

      // Secrets, as for a real cluster: certificates by `evosearch certs`, NATS passwords as
      // deploy/local-cluster.sh makes them (a letter first), a cluster key. The containers get copies
      // owned by the image's user (the keys are its alone, 0600), each only its own.
      const certs = join(dir, 'certs');
      await run(process.execPath, [EVOSEARCH_BIN, 'certs', '--out', certs, '--coordinator', 'coord', '--worker', 'worker-1', '--worker', 'worker-2', '--client', 'alice']);
      const key = join(dir, 'cluster.key');
      await writeFile(key, randomBytes(32).toString('hex'), { mode: 0o600 });
      const password = () => `p${randomBytes(18).toString('hex')}`;
      const passwords = { worker: password(), coordinator: password(), client: password() };
      const secrets = join(dir, 'for-containers');
      mkdirSync(secrets);
      const own = (file: string, name = file.split('/').pop()!) => {
        const copy = join(secrets, name);
        copyFileSync(file, copy);
        chmodSync(copy, name.endsWith('.crt') ? 0o644 : 0o600);
        if (process.getuid?.() === 0) chownSync(copy, IMAGE_UID, IMAGE_UID);
        else {
          // Rootless podman: the image's user is a subordinate uid of this user's namespace.
          const chown = podman(['unshare', 'chown', `${IMAGE_UID}:${IMAGE_UID}`, copy]);
          if (chown.status !== 0) throw new Error(`podman unshare chown ${copy}: ${chown.stderr}`);
        }
        return copy;
      };
      const mount = (file: string, target: string) => ({ source: own(file), target, mode: 'ro' as const });
      const tlsOf = (peer: string) => [mount(join(certs, 'ca.crt'), '/secrets/ca.crt'), mount(join(certs, `${peer}.crt`), '/secrets/tls.crt'), mount(join(certs, `${peer}.key`), '/secrets/tls.key')];
      const TLS_FLAGS = ['--tls-ca', '/secrets/ca.crt', '--tls-cert', '/secrets/tls.crt', '--tls-key', '/secrets/tls.key'];

      const start = async (name: string, image: string, setup: (c: InstanceType<typeof GenericContainer>) => InstanceType<typeof GenericContainer>, ready: RegExp) => {
        let output = '';
        const container = await setup(new GenericContainer(image))
          .withPullPolicy(neverPull)
          .withNetworkMode('host')
          .withLogConsumer((stream) => stream.on('data', (chunk: Buffer | string) => (output += chunk.toString())))
          .withWaitStrategy(Wait.forLogMessage(ready))
          .withStartupTimeout(60_000)
          .start();
        const entry = { name, container, output: () => output };
        containers.push(entry);
        return entry;
      };

      // NATS: the image's documented configuration, on a port it picks itself (-p -1) and logs.
      const nats = await start('nats', NATS_IMAGE, (c) => c
        .withEnvironment({ EVOSEARCH_WORKER_PASSWORD: passwords.worker, EVOSEARCH_COORDINATOR_PASSWORD: passwords.coordinator, EVOSEARCH_CLIENT_PASSWORD: passwords.client })
        .withCommand(['-c', '/etc/nats/evosearch.conf', '-js', '-sd', '/data', '--ports_file_dir', '/tmp', '-a', '127.0.0.1', '-p', '-1']), /Server is ready/);
      const natsUrl = `nats://127.0.0.1:${(await lineOf('nats', nats.output, /Listening for client connections on 127\.0\.0\.1:(\d+)/))[1]}`;

      // The coordinator plans a submitted run from the bundle path the client names, so it sees the
      // bundles at this machine's path; the workers at the image's /models.
      const coordinator = await start('coordinator', IMAGE, (c) => c
        .withEnvironment({ EVOSEARCH_NATS_USER: 'coordinator', EVOSEARCH_NATS_PASSWORD: passwords.coordinator })
        .withBindMounts([...tlsOf('coord'), mount(key, '/secrets/cluster.key'), { source: BUNDLES, target: BUNDLES, mode: 'ro' }])
        .withCommand(['coordinator', '--nats', natsUrl, '--listen', '127.0.0.1:0', '--runs-dir', '/runs', '--model-root', BUNDLES, '--cluster-key', '/secrets/cluster.key', ...TLS_FLAGS]), /"event":"listening"/);
      const coordinatorAddress = (await lineOf('coordinator', coordinator.output, /"event":"listening","address":"([^"]+)"/))[1]!;
      const workers = await Promise.all(['worker-1', 'worker-2'].map((peer) => start(peer, IMAGE, (c) => c
        .withEnvironment({ EVOSEARCH_NATS_USER: 'worker', EVOSEARCH_NATS_PASSWORD: passwords.worker })
        .withBindMounts([...tlsOf(peer), { source: BUNDLES, target: '/models', mode: 'ro' }])
        .withCommand(['worker', '--model', '/models/tiny-sd', '--nats', natsUrl, '--listen', '127.0.0.1:0', '--state-dir', '/state', ...TLS_FLAGS]), /"event":"listening"/)));
      const workerAddresses = await Promise.all(workers.map(async (w) => (await lineOf(w.name, w.output, /"event":"listening","address":"([^"]+)"/))[1]!));
      t.diagnostic(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s: NATS ${natsUrl}, coordinator ${coordinatorAddress}, workers ${workerAddresses.join(', ')}`);

      // Every HEALTHCHECK of the images passes on a serving container (podman runs them from systemd
      // timers, which machines without systemd lack, so they are run here as podman would).
      for (const { name, container } of containers) {
        const command = name === 'nats' ? ['/usr/local/bin/evosearch-nats-healthcheck'] : ['node', '/opt/evosearch/deploy/container/healthcheck.mjs'];
        const check = await container.exec(command);
        assert.equal(check.exitCode, 0, `${name}'s health check failed: ${check.output}`);
        t.diagnostic(`${name}: ${check.output.trim()}`);
      }

      // The same run twice: submitted from here to the containers' cluster as a client (its own NATS
      // user, certificate and the cluster key; no EVOSEARCH_INSECURE), and on local threads.
      const { EVOSEARCH_INSECURE: _insecure, ...env } = process.env;
      const submitted = await run(process.execPath, [EVOSEARCH_BIN, ...RUN, '--cluster', natsUrl, '--out', join(dir, 'cluster'), '--cluster-key', key,
        '--tls-ca', join(certs, 'ca.crt'), '--tls-cert', join(certs, 'alice.crt'), '--tls-key', join(certs, 'alice.key')],
      { env: { ...env, EVOSEARCH_NATS_USER: 'client', EVOSEARCH_NATS_PASSWORD: passwords.client }, timeout: 120_000 })
        .catch((error: { stderr?: string; message: string }) => assert.fail(`the run on the containers failed: ${error.stderr ?? error.message}\n${containers.map((c) => `--- ${c.name}\n${c.output().slice(-3000)}`).join('\n')}`));
      const runId = new RegExp(`submitted run (\\S+) to coordinator ${coordinatorAddress.replace(/\./g, '\\.')}`).exec(submitted.stdout)?.[1];
      assert.ok(runId !== undefined, `the run did not go to the coordinator's container: ${submitted.stdout}`);
      await run(process.execPath, [EVOSEARCH_BIN, ...RUN, '--out', join(dir, 'local')]);

      type RunRecord = { best: unknown; spent: { nfe: number }; workers: string[] };
      const cluster = JSON.parse(await readFile(join(dir, 'cluster', 'record.json'), 'utf8')) as RunRecord;
      const local = JSON.parse(await readFile(join(dir, 'local', 'record.json'), 'utf8')) as RunRecord;
      assert.deepEqual(cluster.best, local.best, 'the containers\' answer differs from the local run\'s');
      assert.equal(cluster.spent.nfe, local.spent.nfe);
      // Each entry: "<address> #0 thread bundle:/models/tiny-sd [all parts on cpu]".
      assert.deepEqual(cluster.workers.map((w) => w.split(' ')[0]).sort(), [...workerAddresses].sort(), `the run was not made by the two worker containers: ${cluster.workers.join('; ')}`);
      // The coordinator kept the run in its runs volume.
      const kept = await coordinator.container.exec(['test', '-f', `/runs/${runId}/record.json`]);
      assert.equal(kept.exitCode, 0, `the coordinator's /runs holds no ${runId}/record.json`);
      t.diagnostic(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      // Workers first, NATS last, so nothing logs a lost connection to a server already gone.
      for (const { container } of containers.reverse()) await container.stop({ timeout: 10_000 }).catch(() => undefined);
      await api.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
