import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { CheckpointError, CheckpointKeyError, KEYED_CHECKPOINT_VERSION, readCheckpoint, UNKEYED_CHECKPOINT_VERSION } from '../coordinator/checkpoint/checkpoint-store.js';
import { CHECKPOINTS_BUCKET } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { ClusterKey, ClusterKeyError } from '../coordinator/checkpoint/cluster-key.js';
import { connectNats } from '../cluster/nats-connection.js';
import { evosearch } from './support/evosearch-cli.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const RUN = ['run', '--budget-nfe', '2000', '--seed', '4', '--no-progress'];

/**
 * What someone without the key does to a checkpoint: the first reward of its last round (no later
 * round's replay depends on it) becomes 5, and every sha256 is recomputed; `downgrade` also makes it an
 * unkeyed checkpoint.
 */
function forgeReward(line: string, manifest: Record<string, unknown>, downgrade: boolean): { line: string; manifest: string } {
  const parsed = JSON.parse(line) as { round: number; body: string; tensors: string[] };
  const body = JSON.parse(parsed.body) as { results: { scores: { reward: number }[] }[] };
  body.results.find((r) => r.scores.length > 0)!.scores[0]!.reward = 5;
  const payload = { body: JSON.stringify(body), tensors: parsed.tensors };
  const lineChecksum = sha256(JSON.stringify(payload));
  const { checksum: _checksum, authentication: _authentication, ...rest } = manifest;
  const lineChecksums = [...(manifest.lineChecksums as string[])];
  lineChecksums[parsed.round] = lineChecksum;
  const fields = { ...(downgrade ? { ...rest, version: UNKEYED_CHECKPOINT_VERSION } : { ...rest, authentication: manifest.authentication }), lineChecksums };
  return { line: `${JSON.stringify({ round: parsed.round, sha256: lineChecksum, ...payload })}\n`, manifest: JSON.stringify({ ...fields, checksum: sha256(JSON.stringify(fields)) }) };
}

/** The last line of a run folder's journal. */
const lastLine = (folder: string) => readFileSync(join(folder, 'journal.jsonl'), 'utf8').split(/(?<=\n)/).at(-1)!;

/** Replaces the last round of a run folder's journal and both its manifests with `forged`. */
function writeForged(folder: string, forged: { line: string; manifest: string }): void {
  const journal = readFileSync(join(folder, 'journal.jsonl'), 'utf8').split(/(?<=\n)/);
  const lines = [...journal.slice(0, -1), forged.line].join('');
  const manifest = JSON.parse(forged.manifest) as Record<string, unknown>;
  const fields: Record<string, unknown> = { ...manifest, journalBytes: Buffer.byteLength(lines) };
  delete fields.checksum;
  writeFileSync(join(folder, 'journal.jsonl'), lines);
  writeFileSync(join(folder, 'checkpoint.json'), JSON.stringify({ ...fields, checksum: sha256(JSON.stringify(fields)) }));
  writeFileSync(join(folder, 'checkpoint.prev.json'), JSON.stringify({ ...fields, checksum: sha256(JSON.stringify(fields)) }));
}

describe('checkpoints sealed with a cluster key (HMAC-SHA256)', () => {
  let dir: string;
  let keyFile: string;
  let otherKeyFile: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'checkpoint-keys-'));
    keyFile = join(dir, 'cluster.key');
    otherKeyFile = join(dir, 'other.key');
    await writeFile(keyFile, `${'a1'.repeat(32)}\n`);
    await writeFile(otherKeyFile, `${'b2'.repeat(32)}\n`);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a keyed run writes version 2 with HMACs; it resumes with its key, and is refused without one (pass the key) or with another', async () => {
    const folder = join(dir, 'keyed');
    const run = await evosearch([...RUN, '--cluster-key', keyFile, '--out', folder]);
    assert.equal(run.code, 0, run.stderr);
    const key = ClusterKey.fromFile(keyFile, 'test');
    const manifest = JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.version, KEYED_CHECKPOINT_VERSION);
    assert.deepEqual(manifest.authentication, { algorithm: 'hmac-sha256', keyId: key.id });
    const { checksum, ...fields } = manifest;
    assert.equal(checksum, key.mac(JSON.stringify(fields)), 'the manifest is sealed with the key');
    assert.notEqual(checksum, sha256(JSON.stringify(fields)));
    const firstLine = JSON.parse((await readFile(join(folder, 'journal.jsonl'), 'utf8')).split('\n')[0]!) as Record<string, unknown>;
    assert.equal(firstLine.hmacSha256, (manifest.lineChecksums as string[])[0]);
    assert.equal(firstLine.sha256, undefined);

    assert.equal(readCheckpoint(folder, key).manifest.rounds, manifest.rounds);
    assert.throws(() => readCheckpoint(folder, null), (e: unknown) => e instanceof CheckpointKeyError && e.message.includes(`${join(folder, 'checkpoint.json')}: written with a cluster key (key id ${key.id}): pass that key with --cluster-key FILE or EVOSEARCH_CLUSTER_KEY_FILE`));
    await rm(join(folder, 'record.json'));
    const withoutKey = await evosearch(['resume', folder, '--no-progress']);
    assert.equal(withoutKey.code, 3, withoutKey.stderr);
    assert.match(withoutKey.stderr, /checkpoint\.json: written with a cluster key \(key id [0-9a-f]{16}\): pass that key with --cluster-key FILE/);
    const otherKey = await evosearch(['resume', folder, '--no-progress', '--cluster-key', otherKeyFile]);
    assert.equal(otherKey.code, 3, otherKey.stderr);
    assert.match(otherKey.stderr, /checkpoint\.json: MAC does not verify with this cluster's key \(--cluster-key .*other\.key, key id [0-9a-f]{16}\): it was not written with this cluster's key, or was changed since \(it names key id [0-9a-f]{16}\)/);
    const resumed = await evosearch(['resume', folder, '--no-progress'], { ...process.env, EVOSEARCH_CLUSTER_KEY_FILE: keyFile });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /^resumed evosearch on analytic:gmm after round \d+: best reward -/m);
  });

  it('a reward forged with its checksums recomputed is refused by name, whether the forger keeps the keyed format or writes an unkeyed one', async () => {
    const key = ClusterKey.fromFile(keyFile, 'test');
    for (const downgrade of [false, true]) {
      const folder = join(dir, `forged-${downgrade ? 'unkeyed' : 'keyed'}`);
      assert.equal((await evosearch([...RUN, '--cluster-key', keyFile, '--out', folder])).code, 0);
      await rm(join(folder, 'record.json'));
      const manifest = JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as Record<string, unknown>;
      writeForged(folder, forgeReward(lastLine(folder), manifest, downgrade));
      const why = downgrade ? /not authenticated \(checkpoint version 1: sha256 checksums, no cluster key\), and this evosearch has a cluster key \(.*\): it was not written with this cluster's key/ : /MAC does not verify with this cluster's key \(.*\): it was not written with this cluster's key/;
      assert.throws(() => readCheckpoint(folder, key), (e: unknown) => e instanceof CheckpointError && e.message.includes(join(folder, 'checkpoint.json')) && why.test(e.message));
      const refused = await evosearch(['resume', folder, '--no-progress', '--cluster-key', keyFile]);
      assert.equal(refused.code, 3, `${refused.stdout}${refused.stderr}`);
      assert.match(refused.stderr, new RegExp(`${join(folder, 'checkpoint.json').replace(/[/.]/g, '\\$&')}: ${why.source}`));
      assert.doesNotMatch(refused.stdout, /best reward 5/);
    }
    // The control: the same forgery of an unkeyed checkpoint is a good one, resumed as it was seen in the probe.
    const unkeyed = join(dir, 'forged-without-a-key');
    assert.equal((await evosearch([...RUN, '--out', unkeyed])).code, 0);
    await rm(join(unkeyed, 'record.json'));
    writeForged(unkeyed, forgeReward(lastLine(unkeyed), JSON.parse(await readFile(join(unkeyed, 'checkpoint.json'), 'utf8')) as Record<string, unknown>, true));
    const accepted = await evosearch(['resume', unkeyed, '--no-progress']);
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(accepted.stdout, /best reward 5\.000000/);
  });

  it('without a key nothing changes: version 1, sha256 lines, and an unkeyed checkpoint resumes without a key (and is refused with one)', async () => {
    const folder = join(dir, 'unkeyed');
    assert.equal((await evosearch([...RUN, '--out', folder])).code, 0);
    const manifest = JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.version, UNKEYED_CHECKPOINT_VERSION);
    assert.equal('authentication' in manifest, false);
    const { checksum, ...fields } = manifest;
    assert.equal(checksum, sha256(JSON.stringify(fields)));
    const firstLine = JSON.parse((await readFile(join(folder, 'journal.jsonl'), 'utf8')).split('\n')[0]!) as { sha256: string; body: string; tensors: string[] };
    assert.equal(firstLine.sha256, sha256(JSON.stringify({ body: firstLine.body, tensors: firstLine.tensors })));
    await rm(join(folder, 'record.json'));
    const withKey = await evosearch(['resume', folder, '--no-progress', '--cluster-key', keyFile]);
    assert.equal(withKey.code, 3, withKey.stderr);
    assert.match(withKey.stderr, /checkpoint\.json: not authenticated \(checkpoint version 1/);
    const resumed = await evosearch(['resume', folder, '--no-progress']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(existsSync(join(folder, 'record.json')), true);
  });

  it('a key file that cannot be a key is refused by name before any work', async () => {
    const short = join(dir, 'short.key');
    await writeFile(short, 'too short\n');
    const tooShort = await evosearch([...RUN, '--cluster-key', short, '--out', join(dir, 'never')]);
    assert.equal(tooShort.code, 2, tooShort.stderr);
    assert.match(tooShort.stderr, /--cluster-key .*short\.key: a cluster key needs at least 32 bytes, this one has 9; make one with `openssl rand -hex 32 > cluster\.key`/);
    const missing = await evosearch([...RUN, '--out', join(dir, 'never')], { ...process.env, EVOSEARCH_CLUSTER_KEY_FILE: join(dir, 'no-such.key') });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /EVOSEARCH_CLUSTER_KEY_FILE .*no-such\.key: cannot read the cluster key \(ENOENT/);
    assert.equal(existsSync(join(dir, 'never')), false);
    assert.throws(() => ClusterKey.fromBytes(Buffer.from('x'.repeat(31)), 'a test key'), (e: unknown) => e instanceof ClusterKeyError && /a test key: a cluster key needs at least 32 bytes, this one has 31/.test(e.message));
  });
});

describe('the probe: a reward edited in the NATS object store, checksums recomputed (real nats-server and worker)', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let dir: string;
  let keyFile: string;
  const workers: WorkerProcess[] = [];
  before(async () => {
    nats = await startNatsServer();
    nc = await connectNats(nats.url, 'checkpoint keys test');
    dir = await mkdtemp(join(tmpdir(), 'checkpoint-keys-nats-'));
    keyFile = join(dir, 'cluster.key');
    await writeFile(keyFile, `${'c3'.repeat(32)}\n`);
    workers.push(await startWorker('analytic:gmm', ['--nats', nats.url]));
  });
  after(async () => {
    await stopWorkers(workers);
    await nc?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('with a cluster key the forged store is refused, naming the object, and nothing is written; the intact store resumes', async () => {
    const folder = join(dir, 'run');
    const run = await evosearch([...RUN, '--cluster', nats.url, '--cluster-key', keyFile, '--out', folder]);
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /not authenticated/, 'a keyed cluster run does not warn');
    const { runId } = JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as { runId: string };
    const store = await new Objm(nc).create(CHECKPOINTS_BUCKET);
    const text = async (name: string) => new TextDecoder().decode((await store.getBlob(`${runId}/${name}`))!);
    const last = `round-${String((JSON.parse(await text('manifest')) as { rounds: number }).rounds - 1).padStart(6, '0')}`;
    const intact = { line: await text(last), manifest: await text('manifest') };

    const forged = forgeReward(intact.line, JSON.parse(intact.manifest) as Record<string, unknown>, false);
    await store.putBlob({ name: `${runId}/${last}` }, new TextEncoder().encode(forged.line));
    await store.putBlob({ name: `${runId}/manifest` }, new TextEncoder().encode(forged.manifest));
    const elsewhere = join(dir, 'elsewhere');
    const refused = await evosearch(['resume', runId, '--cluster', nats.url, '--cluster-key', keyFile, '--runs-dir', elsewhere, '--no-progress']);
    assert.equal(refused.code, 3, `${refused.stdout}${refused.stderr}`);
    assert.match(refused.stderr, new RegExp(`${CHECKPOINTS_BUCKET}/${runId}/manifest: MAC does not verify with this cluster's key \\(--cluster-key .*\\): it was not written with this cluster's key`));
    assert.doesNotMatch(refused.stdout, /best reward 5/);
    assert.equal(existsSync(join(elsewhere, runId, 'journal.jsonl')), false, 'nothing of the forged checkpoint is written');

    // Only the round forged (the manifest intact): refused by the round's name.
    await store.putBlob({ name: `${runId}/manifest` }, new TextEncoder().encode(intact.manifest));
    const roundForged = await evosearch(['resume', runId, '--cluster', nats.url, '--cluster-key', keyFile, '--runs-dir', elsewhere, '--no-progress']);
    assert.equal(roundForged.code, 3, roundForged.stderr);
    assert.match(roundForged.stderr, new RegExp(`${CHECKPOINTS_BUCKET}/${runId}/${last}: round \\d+: MAC does not verify with this cluster's key`));

    // Without the key, the resume says to pass it.
    await store.putBlob({ name: `${runId}/${last}` }, new TextEncoder().encode(intact.line));
    const keyless = await evosearch(['resume', runId, '--cluster', nats.url, '--runs-dir', join(dir, 'keyless'), '--no-progress']);
    assert.equal(keyless.code, 3, keyless.stderr);
    assert.match(keyless.stderr, /written with a cluster key \(key id [0-9a-f]{16}\): pass that key with --cluster-key FILE or EVOSEARCH_CLUSTER_KEY_FILE/);

    const resumed = await evosearch(['resume', runId, '--cluster', nats.url, '--cluster-key', keyFile, '--runs-dir', elsewhere, '--no-progress']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const record = JSON.parse(await readFile(join(elsewhere, runId, 'record.json'), 'utf8')) as { best: { reward: number } };
    const original = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as { best: { reward: number } };
    assert.equal(record.best.reward, original.best.reward);
  });

  it('a cluster run without a cluster key warns, once, that its mirrored checkpoints are not authenticated', async () => {
    const run = await evosearch([...RUN, '--cluster', nats.url, '--out', join(dir, 'unkeyed')]);
    assert.equal(run.code, 0, run.stderr);
    const warnings = run.stderr.split('\n').filter((l) => /are not authenticated/.test(l));
    assert.equal(warnings.length, 1, run.stderr);
    assert.match(warnings[0]!, /checkpoints mirrored to NATS \(evosearch-checkpoints\) are not authenticated: .*--cluster-key FILE or EVOSEARCH_CLUSTER_KEY_FILE/);
  });
});
