/**
 * deploy/local-cluster.sh starts a secured cluster from nothing (certificates, NATS, a coordinator and
 * two mTLS workers), submits a run with a client certificate, gets its folder back, and stops it all.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './support/repo-root.js';

describe('deploy/local-cluster.sh', () => {
  it('runs a search on a local cluster over mutual TLS, from nothing, and leaves no process behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'local-cluster-'));
    // Without the suite's EVOSEARCH_INSECURE: the script must secure everything itself.
    const { EVOSEARCH_INSECURE: _insecure, ...env } = process.env;
    try {
      const { stdout } = await promisify(execFile)('bash', [join(repoRoot(), 'deploy', 'local-cluster.sh'), '--dir', dir, '--budget-nfe', '2000'], { env, timeout: 240_000 });
      assert.match(stdout, /submitted run \S+ to coordinator/);
      const record = JSON.parse(await readFile(join(dir, 'demo', 'record.json'), 'utf8')) as { spent: { nfe: number }; workers: string[] };
      assert.equal(record.spent.nfe, 2000);
      assert.equal(record.workers.length, 2);
      const ps = await promisify(execFile)('ps', ['-eo', 'args']);
      assert.ok(!ps.stdout.split('\n').some((line) => line.includes(dir)), 'a process of the cluster is still running');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
