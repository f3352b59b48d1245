import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'evosearch.js');

async function evosearch(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('evosearch CLI', () => {
  for (const method of ['evosearch', 'best-of-n', 'particles']) {
    it(`run --method ${method} at 5000 NFEs prints the record path, and the record shows the NFEs`, async () => {
      const out = await mkdtemp(join(tmpdir(), `cli-${method}-`));
      const { code, stdout, stderr } = await evosearch('run', '--model', 'analytic:gmm', '--method', method, '--budget-nfe', '5000', '--seed', '1', '--out', out);
      assert.equal(code, 0, stderr);
      const recordPath = /record: (.+)$/m.exec(stdout)?.[1];
      assert.equal(recordPath, join(out, 'record.json'));
      const record = JSON.parse(await readFile(recordPath!, 'utf8'));
      assert.equal(record.spent.nfe, 5000);
      assert.equal(record.plan.method, method);
      assert.match(stdout, /spent 5000 NFEs \(planned 5000, budget 5000\)/);
      const log = await readFile(join(out, 'run.log'), 'utf8');
      assert.match(log, /"msg":"run finished"/);
    });
  }

  it('runs EvoSearch on an ONNX bundle in the SD 2.1 export layout, with a prompt and a reward manifest', async () => {
    const out = await mkdtemp(join(tmpdir(), 'cli-bundle-'));
    const fixtures = join(root, 'test', 'fixtures');
    const { code, stdout, stderr } = await evosearch('run', '--model', join(fixtures, 'sd21-layout'), '--prompt', 'a red circle', '--rewards', join(fixtures, 'tiny-rewards', 'rewards.json'), '--budget-nfe', '500', '--steps', '10', '--out', out);
    assert.equal(code, 0, stderr);
    const record = JSON.parse(await readFile(join(out, 'record.json'), 'utf8'));
    assert.equal(record.spent.nfe, 500);
    assert.equal(record.spent.forwardPasses, 1000, 'classifier-free guidance: two passes per NFE');
    // The bundle's own schedule (v_prediction, DDIM) run stochastically for the search.
    assert.equal(record.plan.sampler.kind, 'ddim');
    assert.equal(record.plan.sampler.prediction_type, 'v_prediction');
    assert.equal(record.plan.sampler.eta, 1);
    assert.ok(Number.isFinite(record.best.reward));
    assert.ok(Number.isFinite(record.best.metrics['image-score']));
    assert.match(stdout, /record: /);
    const missingPrompt = await evosearch('run', '--model', join(fixtures, 'sd21-layout'), '--out', out);
    assert.equal(missingPrompt.code, 2);
    assert.match(missingPrompt.stderr, /prompt: the model bundle .* is text-conditioned/);
    const noBundle = await evosearch('run', '--model', join(fixtures, 'no-such-bundle'), '--prompt', 'a red circle');
    assert.equal(noBundle.code, 2);
    assert.match(noBundle.stderr, /invalid command-line flags: model: .*no-such-bundle/);
  });

  it('a bare model name that is no folder here is refused before any work, with the shipped bundle to use', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'cli-bare-name-')), 'run');
    // It used to pass planning and fail only when the workers opened it ("failed to start: … unknown model").
    const shippedName = await evosearch('run', '--model', 'tiny-sd', '--prompt', 'a red circle', '--out', out);
    assert.equal(shippedName.code, 2);
    assert.match(shippedName.stderr, /model: 'tiny-sd' is neither .* there is no folder .*tiny-sd\. The shipped bundle of that name is .*models\/bundles\/tiny-sd: --model /);
    const otherName = await evosearch('run', '--model', 'sdxl', '--prompt', 'a red circle', '--out', out);
    assert.equal(otherName.code, 2);
    assert.match(otherName.stderr, /'sdxl' is neither .* Shipped bundles, in .*: tiny-flux, tiny-sd, tiny-sd-large, tiny-video\./);
    assert.equal(existsSync(out), false, 'no run folder for a run that never started');
  });

  it('--prompts runs one search per prompt into subfolders and writes a summary report', async () => {
    const out = await mkdtemp(join(tmpdir(), 'cli-prompts-'));
    const fixtures = join(root, 'test', 'fixtures');
    const file = join(out, 'prompts.txt');
    await writeFile(file, '# two prompts\na red circle\n\ntwo blue squares above a yellow circle\n');
    const { code, stdout, stderr } = await evosearch('run', '--model', join(fixtures, 'sd21-layout'), '--prompts', file, '--rewards', join(fixtures, 'tiny-rewards', 'rewards.json'), '--budget-nfe', '300', '--steps', '10', '--out', join(out, 'run'));
    assert.equal(code, 0, stderr);
    assert.match(stdout, /\[1\/2\] a red circle/);
    assert.match(stdout, /\[2\/2\] two blue squares above a yellow circle/);
    for (const folder of ['001-a-red-circle', '002-two-blue-squares-above-a-yellow-circle']) {
      const record = JSON.parse(await readFile(join(out, 'run', folder, 'record.json'), 'utf8'));
      assert.equal(record.spent.nfe, 300);
      for (const f of ['best.png', 'population.png', 'report.html']) await readFile(join(out, 'run', folder, f));
    }
    const summary = await readFile(join(out, 'run', 'report.html'), 'utf8');
    assert.match(summary, /two blue squares above a yellow circle/);
    const both = await evosearch('run', '--model', join(fixtures, 'sd21-layout'), '--prompts', file, '--prompt', 'a red circle');
    assert.equal(both.code, 2);
    assert.match(both.stderr, /either --prompt or --prompts/);
  });

  it('worker and coordinator refuse bad flags with exit code 2, naming the flag', async () => {
    for (const [args, flag] of [
      [['worker', '--model', 'analytic:gmm', '--listen', 'nowhere'], '--listen'],
      [['worker', '--model', 'analytic:gmm', '--max-runs', '0'], '--max-runs'],
      [['worker', '--model', 'analytic:gmm', '--threads', 'many'], '--threads'],
      [['worker', '--model', 'analytic:gmm', '--providers', 'quantum'], '--providers'],
      [['worker', '--model', 'analytic:gmm', '--idle-run-timeout', 'soon'], '--idle-run-timeout'],
      [['worker', '--model', 'analytic:gmm', '--max-batch-bytes', 'lots'], '--max-batch-bytes'],
      [['worker', '--model', 'analytic:gmm', '--model-root', '/no/such/folder'], '--model-root'],
      [['worker', '--model', 'analytic:gmm', '--state-ttl', '0'], '--state-ttl'],
      [['coordinator', '--nats', 'nats://127.0.0.1:1', '--model-root', '/no/such/folder'], '--model-root'],
      [['worker', '--model', 'analytic:gmm', '--listen', '127.0.0.1:0', '--state-dir', '/dev/null'], '--state-dir'],
      [['coordinator', '--nats', 'nats://127.0.0.1:1', '--listen', 'nowhere'], '--listen'],
      [['coordinator', '--nats', 'nats://127.0.0.1:1', '--view-listen', 'nowhere'], '--view-listen'],
      [['coordinator', '--nats', 'nats://127.0.0.1:1', '--metrics-listen', '70000'], '--metrics-listen'],
      [['run', '--cluster', 'http://example.org', '--budget-nfe', '1000'], 'cluster'],
      [['run', '--cluster', 'nats://127.0.0.1:1', '--workers-at', '127.0.0.1:1', '--budget-nfe', '1000'], 'cluster'],
    ] as const) {
      const { code, stderr } = await evosearch(...args);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.ok(stderr.includes(flag), `${args.join(' ')}: ${stderr}`);
    }
  });

  it('a worker whose NATS cannot be reached fails and exits, naming NATS (it served on, unregistered, for ever)', async () => {
    const { code, stderr } = await evosearch('worker', '--model', 'analytic:gmm', '--listen', '127.0.0.1:0', '--nats', 'nats://127.0.0.1:1', '--state-dir', join(tmpdir(), `cli-worker-state-${process.pid}`));
    assert.equal(code, 3, stderr);
    assert.match(stderr, /nats:\/\/127\.0\.0\.1:1/);
  });

  it('plan prints what each method would spend at the budget, without running', async () => {
    const { code, stdout } = await evosearch('plan', '--budget-nfe', '3000');
    assert.equal(code, 0);
    assert.match(stdout, /\| evosearch \(chosen\) \| E=\[0,20,30,40\] K=\[25,16,15,16,18\] elites=5 \| 3000 \|/);
    assert.match(stdout, /\| best-of-n \| n=60 \| 3000 \|/);
    assert.match(stdout, /\| particles \| k=60 .* \| 3000 \|/);
    const json = JSON.parse((await evosearch('plan', '--method', 'particles', '--json')).stdout);
    assert.equal(json.method, 'particles');
    assert.equal(json.planned.particles.nfe, 5000);
  });

  it('--help documents every flag', async () => {
    const { code, stdout } = await evosearch('run', '--help');
    assert.equal(code, 0);
    const flags = ['--config', '--model', '--method', '--preset', '--seed', '--budget-nfe', '--sampler', '--steps', '--eta', '--shift', '--prediction-type', '--evolution-schedule', '--population-schedule', '--elites', '--mutation-rate', '--tournament-fraction', '--tournament-size', '--no-archive', '--samples', '--particles', '--lambda', '--potential', '--resample-every', '--resample-start', '--resample-end', '--adaptive-resampling', '--particle-fitness', '--prompt', '--negative-prompt', '--rewards', '--providers', '--guidance-scale', '--workers', '--batch-size', '--out', '--log-level', '--no-progress'];
    for (const flag of flags) assert.match(stdout, new RegExp(`${flag}\\b`), `help lacks ${flag}`);
    // Every option line carries a description.
    const optionLines = stdout.split('\n').filter((l) => /^\s+--/.test(l));
    assert.ok(optionLines.length >= flags.length);
  });

  it('reads a YAML config file, flags override it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'cli-config-'));
    const file = join(out, 'run.yaml');
    await writeFile(file, 'method: best-of-n\npreset: wan\nseed: 4\nbudgetNfe: 800\nevosearch:\n  elites: 1\n');
    const { code, stderr } = await evosearch('run', '--config', file, '--seed', '6', '--out', join(out, 'run'));
    assert.equal(code, 0, stderr);
    const config = JSON.parse(await readFile(join(out, 'run', 'config.json'), 'utf8'));
    assert.equal(config.method, 'best-of-n');
    assert.equal(config.preset, 'wan');
    assert.equal(config.seed, 6);
    assert.equal(config.bestOfN.n, 16);
  });

  it('bad flags and bad files exit 2 with the field, the source and the allowed values', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--budget-nfe', '100'], /invalid command-line flags: budgetNfe: 100 NFEs is too small/],
      [['run', '--seed', 'abc'], /--seed takes an integer, got 'abc'/],
      [['run', '--method', 'beam'], /Allowed choices are evosearch, best-of-n, particles/],
      [['run', '--mutation-rate', '3'], /evosearch.mutationRate/],
      [['run', '--config', '/nonexistent/run.yaml'], /--config: cannot read '\/nonexistent\/run.yaml'/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await evosearch(...args);
      assert.notEqual(code, 0, `${args.join(' ')} should fail`);
      assert.match(stderr, message);
    }
    const dir = await mkdtemp(join(tmpdir(), 'cli-bad-'));
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'method: evosearch\nevosearch:\n  populationSchedule: [10, 10]\n');
    const { code, stderr } = await evosearch('run', '--config', file);
    assert.equal(code, 2);
    assert.match(stderr, new RegExp(`config \\(${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\+ flags\\).*evosearch.populationSchedule: needs 5 entries`));
    await writeFile(file, 'method: [unclosed\n');
    assert.match((await evosearch('run', '--config', file)).stderr, /not valid YAML or JSON/);
  });
});
