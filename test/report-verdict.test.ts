import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { runSearchToFolder, type SearchToFolderResult } from '../coordinator/run/run-search-to-folder.js';
import { parseRunConfig, resolveRunConfig } from '../config/resolve-run-config.js';
import { checkHeldOut, scoredSamples } from '../report/held-out-check.js';
import { generationPoints, heldOutCheckOf, renderHtmlReport } from '../report/html-report.js';
import type { PromptReport } from '../report/report-data.js';
import { repoRoot } from './support/repo-root.js';

const root = repoRoot();
const bin = join(root, 'bin', 'evosearch.js');
const silent = pino({ level: 'silent' });

/** A real run of the analytic model (2000 NFEs, seed 0), with its report data as the run wrote it. */
async function realRun(folder: string, method: 'evosearch' | 'best-of-n' | 'particles'): Promise<SearchToFolderResult & { html: string }> {
  const plan = resolveRunConfig(parseRunConfig({ method, budgetNfe: 2000 }, 'test'), 'test');
  const result = await runSearchToFolder(plan, { folder: join(folder, method), logger: silent, checkpoint: false });
  return { ...result, html: await readFile(join(folder, method, 'report.html'), 'utf8') };
}

/** The report data with the scored samples the held-out check reads, from the run's own candidates. */
function withScored(result: SearchToFolderResult): PromptReport {
  return { ...result.report, scored: result.report.scored ?? scoredSamples(result.record.candidates) };
}

/** The generation labels on the chart's x-axis, in order. */
function xAxis(html: string): string[] {
  const svg = html.match(/<svg class="chart"[\s\S]*?<\/svg>/)![0];
  return [...svg.matchAll(/<text [^>]*text-anchor="middle">(\d+)<\/text>/g)].map((m) => m[1]!);
}

function points(html: string, series: string): number {
  const svg = html.match(/<svg class="chart"[\s\S]*?<\/svg>/)![0];
  return svg.match(new RegExp(`data-series="${series}"[^>]*points="([^"]*)"`))![1]!.split(' ').length;
}

describe('report from real runs', () => {
  let folder: string;
  const runs: Partial<Record<'evosearch' | 'best-of-n' | 'particles', SearchToFolderResult & { html: string }>> = {};
  before(async () => {
    folder = await mkdtemp(join(tmpdir(), 'report-verdict-'));
    for (const method of ['evosearch', 'best-of-n', 'particles'] as const) runs[method] = await realRun(folder, method);
  });
  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('the chart shows each generation once on its x-axis (EvoSearch, particles)', () => {
    const evo = runs.evosearch!;
    // Two rounds of the last generation (to x0, then freeing the overtaken samples): once on the axis.
    assert.ok(evo.report.rounds.length > new Set(evo.report.rounds.map((r) => r.generation)).size, 'the run has generations of several rounds');
    assert.deepEqual(xAxis(evo.html), ['1', '2', '3', '4', '5']);
    assert.equal(points(evo.html, 'best'), 5);
    assert.equal(points(evo.html, 'population-mean'), 5);
    const particles = runs.particles!;
    // Advance-and-score then resample, per generation; the init round (generation 0) has no value.
    assert.deepEqual(xAxis(particles.html), ['1', '2', '3']);
    assert.equal(points(particles.html, 'population-mean'), 3);
    // Each point is its generation's scoring round, not the resampling round that repeats its figures.
    assert.deepEqual(generationPoints(particles.report.rounds).map((r) => r.label.split(' ')[0]), ['advance', 'advance', 'advance']);
  });

  it('a winner the held-out metrics agree with (EvoSearch): said so, no warning', () => {
    const report = withScored(runs.evosearch!);
    const check = heldOutCheckOf(report)!;
    assert.equal(check.verdict, 'agree');
    assert.equal(check.samples, 60, 'every rollout and final sample, each once');
    for (const m of check.metrics) assert.ok(m.higher <= m.samples / 2, `${m.name}: ${m.higher} of ${m.samples} higher`);
    const html = renderHtmlReport({ title: 'agree', prompts: [report] });
    assert.match(html, /<p class="held-out agree" data-verdict="agree">The held-out metrics agree with the guidance reward/);
    assert.doesNotMatch(html, /Warning:/);
  });

  it('a winner with a high guidance reward and a held-out metric below the median (Best-of-N): warned, with the figures', () => {
    const run = runs['best-of-n']!;
    const report = withScored(run);
    const check = heldOutCheckOf(report)!;
    assert.equal(check.verdict, 'disagree');
    assert.deepEqual(check.disagreeing, ['log-density']);
    const density = check.metrics.find((m) => m.name === 'log-density')!;
    assert.equal(density.winner, run.record.best!.metrics!['log-density']);
    assert.ok(density.winner < density.median && density.higher > density.samples / 2);
    // The winner is the top of the same samples by guidance reward.
    assert.equal(Math.max(...report.scored!.map((s) => s.reward)), run.record.best!.reward);
    const html = renderHtmlReport({ title: 'disagree', prompts: [report] });
    const note = html.match(/<p class="held-out disagree" data-verdict="disagree">[\s\S]*?<\/p>/)![0];
    assert.match(note, /<strong>Warning:<\/strong> The guidance reward and the held-out metrics disagree: the winner&#39;s log-density -0\.8076 is below the median/);
    assert.match(note, new RegExp(`${density.higher} of ${density.samples} score higher`));
    // The summary of several prompts says it per prompt.
    const both = renderHtmlReport({ title: 'both', prompts: [withScored(runs.evosearch!), report] });
    const table = both.match(/<table class="summary">[\s\S]*?<\/table>/)![0];
    assert.ok(table.includes('<th>held-out check</th>') && table.includes('<td>agrees</td>') && table.includes('<td>disagrees (log-density)</td>'), table);
  });

  it('the definition: below the median of the scored samples, ties to the winner; too few samples, no verdict', () => {
    const samples = [1, 2, 3, 4, 5].map((v) => ({ reward: v, metrics: { m: v, hit: 1 } }));
    assert.equal(checkHeldOut({ metrics: { m: 3, hit: 1 } }, samples)!.verdict, 'agree', 'at the median: 2 of 5 higher');
    assert.equal(checkHeldOut({ metrics: { m: 2, hit: 1 } }, samples)!.verdict, 'disagree', '3 of 5 higher');
    assert.equal(checkHeldOut({ metrics: { m: 5, hit: 0 } }, samples)!.verdict, 'disagree', 'a 0/1 metric the others all hit');
    assert.equal(checkHeldOut({ metrics: { m: 1 } }, samples.slice(0, 3)), null);
    assert.equal(checkHeldOut({ metrics: {} }, samples), null);
  });

  it('the CLI summary warns when they disagree, and only then', async () => {
    const cli = (method: string, out: string) =>
      new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [bin, 'run', '--method', method, '--budget-nfe', '2000', '--no-progress', '--out', join(folder, out)], { cwd: root }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
      );
    const bestOfN = await cli('best-of-n', 'cli-best-of-n');
    assert.match(bestOfN, /^warning: the guidance reward and the held-out metrics disagree: the winner's log-density -0\.8076 is below the median -?\d+\.\d{4} \(\d+ of 40 score higher\)/m);
    assert.doesNotMatch(await cli('evosearch', 'cli-evosearch'), /warning:/);
  });
});
