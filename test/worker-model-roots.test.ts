/**
 * A worker loads rewards manifests, and what they name, only under its model roots
 * (`evosearch worker --model-root`), and no loader's error shows what a file holds. The probe: a
 * coordinator's RunSetup.rewards naming any file made the worker's refusal quote its first bytes, and
 * told an existing file from a missing one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { planRun } from '../config/plan-run.js';
import type { RunPlan } from '../config/resolve-run-config.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { workerService } from '../proto/worker-service.js';
import { setupToWire } from '../proto/setup-message.js';
import { readBundleManifest } from '../worker/bundles/bundle-manifest.js';
import { parseMerges } from '../worker/bundles/bpe.js';
import { readRewardManifest } from '../worker/bundles/reward-manifest.js';
import { loadTokenizer } from '../worker/bundles/tokenizer.js';
import { WorkerServer } from '../worker/grpc-server.js';
import { repoRoot } from './support/repo-root.js';

/** What no error may show: it stands for the bytes of a file the caller should not see. */
const SECRET = 'TOP-SECRET-7f3a';
const BUNDLE = join(repoRoot(), 'models', 'bundles', 'tiny-sd');

describe('a worker\'s model roots: RunSetup.rewards and what the manifest names', () => {
  let dir: string;
  let root: string;
  let server: WorkerServer;
  let client: grpc.Client;
  let plan: RunPlan;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'model-roots-'));
    root = join(dir, 'root');
    await mkdir(join(dir, 'outside'), { recursive: true });
    await cp(join(BUNDLE, 'rewards'), join(root, 'rewards'), { recursive: true });
    await writeFile(join(dir, 'outside', 'secret.txt'), `${SECRET}: root:x:0:0:root:/root:/bin/bash\n`);
    plan = await planRun({ model: BUNDLE, prompt: 'a small yellow square', budgetNfe: 200, seed: 2 }, 'test');
    server = await WorkerServer.start('127.0.0.1:0', { model: BUNDLE, modelRoots: [root], stateDir: join(dir, 'state'), logger: pino({ level: 'silent' }) });
    client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The worker's refusal of a setup with `rewards`: its status and message. */
  async function refusal(rewards: string, runId = `r-${Math.random().toString(36).slice(2)}`): Promise<{ code: number; details: string }> {
    const m = workerService.setup;
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { runId, setup: setupToWire({ ...workerSetupFor(plan), rewards }) }, (error) => (error ? resolve({ code: error.code, details: error.details }) : reject(new Error(`the worker set up a run with rewards ${rewards}`)))),
    );
  }

  it('a path outside the roots is refused before it is read (INVALID_ARGUMENT naming setup.rewards and --model-root), the same whether it exists or not', async () => {
    const existing = await refusal(join(dir, 'outside', 'secret.txt'));
    const missing = await refusal(join(dir, 'outside', 'no-such-file.json'));
    assert.equal(existing.code, grpc.status.INVALID_ARGUMENT, existing.details);
    assert.match(existing.details, /setup\.rewards: ".*secret\.txt" is outside this worker's model roots; a worker loads models and rewards only from the folders its --model-root flags name/);
    assert.ok(!existing.details.includes(SECRET) && !existing.details.includes('root:x'), `the refusal shows the file: ${existing.details}`);
    assert.equal(existing.details.replace(/"[^"]*"/, '"…"').replace(/run r-\w+/, 'run r'), missing.details.replace(/"[^"]*"/, '"…"').replace(/run r-\w+/, 'run r'), 'an existing file is told from a missing one');
    // A path that climbs out of a root is outside it, and so is one through a link inside it.
    assert.match((await refusal(join(root, '..', 'outside', 'secret.txt'))).details, /is outside this worker's model roots/);
    await symlink(join(dir, 'outside', 'secret.txt'), join(root, 'linked.json'));
    const linked = await refusal(join(root, 'linked.json'));
    assert.match(linked.details, /setup\.rewards: .*linked\.json" is outside this worker's model roots/);
    assert.ok(!linked.details.includes(SECRET));
  });

  it('a manifest inside a root that names files outside it is refused (naming the entry and --model-root), existing or not; one that is not JSON is refused without its content', async () => {
    const manifest = JSON.parse(await readFile(join(BUNDLE, 'rewards.json'), 'utf8')) as { rewards: { path: string }[] };
    const naming = async (name: string, path: string) => {
      await writeFile(join(root, name), JSON.stringify({ ...manifest, rewards: manifest.rewards.map((r, i) => (i === 0 ? { ...r, path } : r)) }));
      return refusal(join(root, name));
    };
    const existing = await naming('escapes.json', '../outside/secret.txt');
    const missing = await naming('escapes-missing.json', '../outside/nothing.onnx');
    for (const r of [existing, missing]) {
      assert.equal(r.code, grpc.status.FAILED_PRECONDITION, r.details);
      assert.match(r.details, /rewards\[0\]\.path: ".*" is outside this worker's model roots; .*--model-root/);
      assert.ok(!r.details.includes(SECRET), r.details);
    }
    assert.doesNotMatch(missing.details, /is missing/, 'a file outside the roots was looked for');
    await writeFile(join(root, 'not-json.json'), `${SECRET}\nroot:x:0:0\n`);
    const notJson = await refusal(join(root, 'not-json.json'));
    assert.match(notJson.details, /not-json\.json: \(file\): cannot be read as JSON: not valid JSON/);
    assert.ok(!notJson.details.includes(SECRET), `the refusal shows the file: ${notJson.details}`);
    // The manifest inside the root with its graphs inside it too: the run is set up.
    await writeFile(join(root, 'rewards.json'), JSON.stringify(manifest));
    await new Promise<void>((resolve, reject) => client.makeUnaryRequest(workerService.setup.path, workerService.setup.requestSerialize, workerService.setup.responseDeserialize, { runId: 'inside', setup: setupToWire({ ...workerSetupFor(plan), rewards: join(root, 'rewards.json') }) }, (error) => (error ? reject(error) : resolve())));
  });
});

describe('model loaders: errors say what is wrong and where, never what the file holds', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loader-errors-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const hides = (error: unknown) => {
    const text = `${(error as Error).message}`;
    assert.ok(!text.includes(SECRET) && !text.includes('root:x'), `the error shows the file: ${text}`);
    return true;
  };

  it('a rewards manifest that is not JSON, or whose fields are wrong', async () => {
    await writeFile(join(dir, 'rewards.json'), `${SECRET} root:x:0:0\n`);
    await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), (e: unknown) => /rewards\.json: \(file\): cannot be read as JSON: not valid JSON/.test((e as Error).message) && hides(e));
    await writeFile(join(dir, 'rewards.json'), `{"version": 1, "rewards": [{"name": "x", "path": "a.onnx"`);
    await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), (e: unknown) => /not valid JSON \(at line 1, column 58\)/.test((e as Error).message));
    await writeFile(join(dir, 'rewards.json'), JSON.stringify({ version: SECRET, rewards: [] }));
    await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), (e: unknown) => /version: must be 1, got a string of 15 characters/.test((e as Error).message) && hides(e));
    await writeFile(join(dir, 'rewards.json'), JSON.stringify({ version: 1, rewards: [{ name: 'g', builtin: 'composition-checker', role: SECRET }] }));
    await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), (e: unknown) => /rewards\[0\]\.role: must be 'guidance' or 'held-out', got a string/.test((e as Error).message) && hides(e));
    await assert.rejects(readRewardManifest(join(dir, 'none.json')), (e: unknown) => /none\.json: \(file\): is missing/.test((e as Error).message));
  });

  it('a bundle config, a tokenizer and a merges file that are not what they should be', async () => {
    const bundle = join(dir, 'bundle');
    await cp(BUNDLE, bundle, { recursive: true, filter: (source) => !source.endsWith('.onnx') });
    await writeFile(join(bundle, 'model_index.json'), `{\n  "_class_name": "${SECRET}" "root:x:0:0"\n}`);
    await assert.rejects(readBundleManifest(bundle), (e: unknown) => /model_index\.json: is not valid JSON \(at line 2, column 36\)/.test((e as Error).message) && hides(e));
    await writeFile(join(bundle, 'model_index.json'), `{\n  "_class_name": ${SECRET}\n}`);
    await assert.rejects(readBundleManifest(bundle), (e: unknown) => /model_index\.json: is not valid JSON;/.test((e as Error).message) && hides(e));
    await writeFile(join(bundle, 'tokenizer', 'tokenizer.json'), `${SECRET} root:x:0:0`);
    await assert.rejects(loadTokenizer({ kind: 'tokenizer-json', tokenizerJson: join(bundle, 'tokenizer', 'tokenizer.json'), tokenizerConfig: null }, 16), (e: unknown) => /tokenizer\.json: is not a JSON object: not valid JSON/.test((e as Error).message) && hides(e));
    assert.throws(() => parseMerges('merges.txt', ['#version: 0.2', 'a b', `${SECRET} root:x:0:0 more`]), (e: unknown) => /merges\.txt: merge 3 is not two space-separated tokens \(it has 3\)/.test((e as Error).message) && hides(e));
  });
});
