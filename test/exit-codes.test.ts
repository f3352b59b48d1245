import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERROR_CODES } from '../errors/evosearch-error.js';
import { evosearch } from './support/evosearch-cli.js';
import { repoRoot } from './support/repo-root.js';

const root = repoRoot();


describe('one error model: exit codes by kind of failure, not by where it was caught', () => {
  it('a flag the parser refuses exits 2, as a config the validator refuses does (the parser used to exit 1)', async () => {
    const parse = await evosearch(['run', '--budget-nfe', 'lots']);
    assert.equal(parse.code, 2, parse.stderr);
    assert.match(parse.stderr, /--budget-nfe takes an integer, got 'lots'/);
    const unknown = await evosearch(['run', '--budget-nfee', '100']);
    assert.equal(unknown.code, 2, unknown.stderr);
    const validation = await evosearch(['run', '--budget-nfe', '10']);
    assert.equal(validation.code, 2, validation.stderr);
    assert.match(validation.stderr, /^evosearch: .*budgetNfe/m);
  });

  it('a missing config file or model folder exits 2 with one line naming it; no workers exit 3', async () => {
    const config = await evosearch(['run', '--config', '/nonexistent/run.yaml']);
    assert.equal(config.code, 2, config.stderr);
    assert.match(config.stderr, /\/nonexistent\/run\.yaml/);
    const model = await evosearch(['run', '--model', '/nonexistent/bundle', '--budget-nfe', '1000']);
    assert.equal(model.code, 2, model.stderr);
    assert.match(model.stderr, /\/nonexistent\/bundle/);
    assert.doesNotMatch(model.stderr, /\n\s+at /, 'no stack for a user error');
    const dir = await mkdtemp(join(tmpdir(), 'exit-codes-'));
    const workers = await evosearch(['run', '--workers-at', '127.0.0.1:1', '--budget-nfe', '1000', '--no-progress', '--out', join(dir, 'r')]);
    assert.equal(workers.code, 3, workers.stderr);
    assert.match(workers.stderr, /^evosearch: worker 127\.0\.0\.1:1/m);
  });

  it('--version prints the version and the runtime and exits 0', async () => {
    const own = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    for (const flag of ['--version', '-V']) {
      const r = await evosearch([flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^evosearch ${own.replace(/\./g, '\\.')} \\(node v\\d+`));
      assert.match(r.stdout, /onnxruntime-node 1\.29\.0/);
    }
  });

  it("the README's table lists every error code under its exit code", async () => {
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Exit codes'), readme.indexOf('## Real models'));
    for (const [code, exit] of Object.entries(ERROR_CODES)) {
      const row = section.split('\n').find((line) => line.startsWith(`| ${exit} |`));
      assert.ok(row, `no row for exit ${exit}`);
      assert.ok(row.includes(`\`${code}\``), `README: error code ${code} missing from the row of exit ${exit}`);
    }
  });
});
