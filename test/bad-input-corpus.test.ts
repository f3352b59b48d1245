/**
 * Bad input, as a corpus: each case is a command a user might type (or a file they might hand over),
 * the exit code it must give, and what the message must name. None may crash with a stack trace,
 * and none may leave a half-written run behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './support/repo-root.js';

const execFileAsync = promisify(execFile);

interface Case {
  readonly name: string;
  readonly args: (dir: string) => string[];
  readonly code: number;
  /** Everything the message must say: the cause and where. */
  readonly says: readonly RegExp[];
}

const bundle = () => join(repoRoot(), 'models', 'bundles', 'tiny-sd');

const CASES: readonly Case[] = [
  { name: 'a config file that is not YAML', args: (d) => ['run', '--config', join(d, 'broken.yaml')], code: 2, says: [/broken\.yaml/, /not valid YAML or JSON/, /line 2/] },
  { name: 'an unknown config key', args: (d) => ['run', '--config', join(d, 'unknown.yaml')], code: 2, says: [/unknown\.yaml/, /Unrecognized key: "frobnicate"/] },
  { name: 'a budget below one trajectory', args: () => ['run', '--budget-nfe', '10'], code: 2, says: [/budgetNfe/, /does not buy one trajectory of 50 steps/] },
  { name: 'a budget too small for the EvoSearch schedule', args: () => ['run', '--budget-nfe', '60'], code: 2, says: [/budgetNfe/, /too small for the evolution schedule/] },
  { name: 'a negative seed', args: () => ['run', '--seed', '-1'], code: 2, says: [/seed/, />=0/] },
  { name: 'a zero batch size', args: () => ['run', '--batch-size', '0'], code: 2, says: [/batchSize/] },
  { name: 'a deterministic sampler for EvoSearch', args: () => ['run', '--sampler', 'ddim', '--eta', '0'], code: 2, says: [/eta/] },
  { name: 'a model folder that does not exist', args: (d) => ['run', '--model', join(d, 'nowhere'), '--prompt', 'a red circle'], code: 2, says: [/nowhere/, /is not a folder/] },
  { name: 'a bundle with a missing file', args: (d) => ['run', '--model', join(d, 'no-unet'), '--prompt', 'a red circle', '--out', join(d, 'out-no-unet')], code: 2, says: [/no-unet/, /unet/] },
  { name: 'a bundle without a prompt', args: () => ['run', '--model', bundle()], code: 2, says: [/prompt/, /text-conditioned/] },
  { name: 'a prompt with an unknown word', args: () => ['run', '--model', bundle(), '--prompt', 'a red blob'], code: 2, says: [/unknown word "blob"/, /vocabulary/] },
  { name: 'a prompt for the analytic model', args: () => ['run', '--prompt', 'a red circle'], code: 2, says: [/takes no prompt/] },
  { name: 'a cluster URL that is not NATS', args: () => ['run', '--cluster', 'http://example.org'], code: 2, says: [/cluster/, /NATS URL/] },
  { name: 'both a cluster and worker addresses', args: () => ['run', '--cluster', 'nats://127.0.0.1:1', '--workers-at', '127.0.0.1:1'], code: 2, says: [/either a cluster/] },
  { name: 'an unreachable worker', args: () => ['run', '--workers-at', '127.0.0.1:1', '--budget-nfe', '1000'], code: 3, says: [/worker 127\.0\.0\.1:1/] },
  { name: 'resuming a folder that is no run', args: (d) => ['resume', d], code: 3, says: [/no checkpoint here/] },
  { name: 'an execution provider that does not exist', args: () => ['worker', '--model', 'analytic:gmm', '--providers', 'quantum'], code: 2, says: [/unknown execution provider 'quantum'/] },
];

describe('bad input: a corpus of cases, each with an error that names the cause', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bad-input-'));
    await writeFile(join(dir, 'broken.yaml'), 'budgetNfe: [oops\n');
    await writeFile(join(dir, 'unknown.yaml'), 'budgetNfe: 5000\nfrobnicate: true\n');
    await cp(bundle(), join(dir, 'no-unet'), { recursive: true });
    await rm(join(dir, 'no-unet', 'unet', 'model.onnx'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const c of CASES) {
    it(c.name, async () => {
      const result = await execFileAsync(process.execPath, [join(repoRoot(), 'bin', 'evosearch.js'), ...c.args(dir)], { timeout: 60_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(result.code, c.code, result.stderr);
      for (const pattern of c.says) assert.match(result.stderr, pattern);
      assert.doesNotMatch(result.stderr, /^\s+at .+\(.+:\d+:\d+\)$/m, 'a stack trace reached the user');
    });
  }

  it('a failed start leaves no half-written run behind', async () => {
    assert.ok(!existsSync(join(dir, 'out-no-unet', 'record.json')));
    assert.ok(!existsSync(join(dir, 'out-no-unet', 'checkpoint.json')));
  });
});
