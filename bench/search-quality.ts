/**
 * Search quality on the shipped bundles: EvoSearch, Best-of-N and particle sampling on held-out
 * prompts at equal NFE budgets, an EvoSearch settings sweep, and a small model with search against a
 * large one without, at equal wall time. `measure` appends one JSON line per search to a results file
 * (shardable across processes); `report` turns results files into a markdown report with PNG plots.
 *
 *   npm run bench:quality -- --parallel 8 --threads 2   # grid + sweep, then the report (runs/search-quality/)
 *   node dist/bench/search-quality.js measure --study equal-time --image-prompts 8 --results eq.jsonl   # alone on the machine
 *   node dist/bench/search-quality.js report results*.jsonl --out bench/reports/search-quality
 */
import { Command, Option } from 'commander';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { equalTimeUnits, gridUnits, shard, SWEEP_VARIANTS, type JobUnit } from './search-quality/jobs.js';
import { measureUnit } from './search-quality/measure.js';
import type { SearchResult } from './search-quality/measure.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const list = (value: string) => value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
const numbers = (value: string) => (value === 'none' ? [] : list(value)).map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`'${s}' is not a positive whole number (in '${value}')`);
  return n;
});

function prompts(kind: 'image' | 'video', count: number): string[] {
  const file = join(root, 'bench', 'prompts', `heldout-${kind}.txt`);
  const all = readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
  if (count > all.length) throw new Error(`${file} holds ${all.length} prompts; asked for ${count}`);
  return all.slice(0, count);
}

function isVideo(bundlesDir: string, name: string): boolean {
  const index = join(bundlesDir, name, 'model_index.json');
  if (!existsSync(index)) throw new Error(`${index} is missing: '${name}' is not a bundle under ${bundlesDir}`);
  return (JSON.parse(readFileSync(index, 'utf8')) as { _evosearch?: { family?: string } })._evosearch?.family === 'video';
}

interface MeasureFlags {
  study: string;
  bundlesDir: string;
  bundles: string;
  imagePrompts: string;
  videoPrompts: string;
  imageBudgets: string;
  videoBudgets: string;
  seeds: string;
  firstSeed: string;
  sweep: string;
  variants: string;
  gridVariants: string;
  small: string;
  large: string;
  smallBudgets: string;
  largeBudgets: string;
  singleSamples: string;
  shard: string;
  threads?: string;
  results: string;
  skipDone?: string;
}

/** The searches a results file holds (one JSON line each). */
const readResults = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l.trim().length > 0).map((l) => JSON.parse(l) as SearchResult);

/** The key of a search: two results with the same key measured the same thing. */
const searchKey = (bundle: string, prompt: string, job: { study: string; method: string; variant: string; budgetNfe: number; seed: number }) =>
  JSON.stringify([bundle, prompt, job.study, job.method, job.variant, job.budgetNfe, job.seed]);

/** Drops the searches that results files already hold (a run cut short is finished by running it again). */
function withoutDone(units: JobUnit[], files: readonly string[]): JobUnit[] {
  const done = new Set(files.flatMap(readResults).map((r) => searchKey(r.bundle, r.prompt, r)));
  return units.map((u) => ({ ...u, jobs: u.jobs.filter((j) => !done.has(searchKey(u.bundle, u.prompt, j))) })).filter((u) => u.jobs.length > 0);
}

function units(flags: MeasureFlags): JobUnit[] {
  const studies = list(flags.study);
  const all: JobUnit[] = [];
  if (studies.includes('grid') || studies.includes('sweep')) {
    const sweep = flags.sweep === 'none' ? [] : list(flags.sweep).map((item) => {
      const [bundle, budget] = item.split('@');
      return { bundle: bundle!, budget: numbers(budget ?? '')[0]! };
    });
    all.push(...gridUnits({
      bundles: list(flags.bundles).map((name) => ({ name, video: isVideo(flags.bundlesDir, name) })),
      imagePrompts: prompts('image', Number(flags.imagePrompts)),
      videoPrompts: prompts('video', Number(flags.videoPrompts)),
      imageBudgets: numbers(flags.imageBudgets),
      videoBudgets: numbers(flags.videoBudgets),
      seeds: Number(flags.seeds),
      firstSeed: Number(flags.firstSeed),
      grid: studies.includes('grid'),
      sweep,
      variants: flags.variants === 'all' ? Object.keys(SWEEP_VARIANTS) : list(flags.variants),
      gridVariants: flags.gridVariants === 'none' ? [] : list(flags.gridVariants),
    }));
  }
  if (studies.includes('equal-time')) {
    const steps = (JSON.parse(readFileSync(join(flags.bundlesDir, flags.large, 'model_index.json'), 'utf8')) as { _evosearch?: { default_steps?: number } })._evosearch?.default_steps ?? 50;
    all.push(...equalTimeUnits({
      small: flags.small,
      large: flags.large,
      prompts: prompts('image', Number(flags.imagePrompts)),
      smallBudgets: numbers(flags.smallBudgets),
      largeBudgets: numbers(flags.largeBudgets),
      largeSteps: steps,
      noSearchSamples: Number(flags.singleSamples),
    }));
  }
  const [index, count] = flags.shard.split('/').map(Number) as [number, number];
  if (!(count >= 1 && index >= 0 && index < count)) throw new Error(`--shard ${flags.shard}: expected i/n with 0 <= i < n`);
  return shard(flags.skipDone === undefined ? all : withoutDone(all, list(flags.skipDone)), index, count);
}

/**
 * Runs `parallel` shards of this same command as child processes, each into its own file, then
 * appends their lines to `results` (shard order, so the file does not depend on timing).
 */
async function measureInParallel(parallel: number, results: string): Promise<void> {
  const args = process.argv.slice(2).filter((a, i, all) => a !== '--parallel' && all[i - 1] !== '--parallel' && !a.startsWith('--parallel='));
  const files = Array.from({ length: parallel }, (_, i) => `${results}.shard${i}`);
  const codes = await Promise.all(files.map((file, i) => new Promise<number>((resolvePromise) => {
    rmSync(file, { force: true });
    const child = spawn(process.execPath, [process.argv[1]!, ...args, '--shard', `${i}/${parallel}`, '--results', file], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code) => resolvePromise(code ?? 1));
  })));
  for (const file of files) {
    if (existsSync(file)) appendFileSync(results, readFileSync(file));
    rmSync(file, { force: true });
  }
  const failed = codes.flatMap((code, i) => (code === 0 ? [] : [`shard ${i} exited with ${code}`]));
  if (failed.length > 0) throw new Error(`${failed.join('; ')} (what the shards measured is in ${results})`);
}

const program = new Command('search-quality').description('Search quality of EvoSearch, Best-of-N and particle sampling on the shipped bundles.');

program
  .command('measure')
  .description('run searches and append one JSON line per search to the results file')
  .addOption(new Option('--study <names>', 'grid (methods x budgets), sweep (EvoSearch settings) and/or equal-time').default('grid,sweep'))
  .option('--bundles-dir <dir>', 'where the bundles are', join(root, 'models', 'bundles'))
  .option('--bundles <names>', 'bundles of the grid', 'tiny-sd,tiny-flux,tiny-video')
  .option('--image-prompts <n>', 'held-out image prompts (bench/prompts/heldout-image.txt)', '16')
  .option('--video-prompts <n>', 'held-out video prompts', '10')
  .option('--image-budgets <nfes>', 'NFE budgets for image bundles', '250,500,1000,2500,5000')
  .option('--video-budgets <nfes>', 'NFE budgets for video bundles', '100,200,300,600,900')
  .option('--seeds <n>', 'seeds per prompt', '1')
  .option('--first-seed <n>', 'the first seed', '1')
  .option('--sweep <bundle@budget,...>', "where the EvoSearch settings sweep runs ('none' for nowhere)", 'tiny-sd@2500,tiny-flux@2500,tiny-video@900')
  .option('--variants <names>', `sweep variants, or 'all': ${Object.keys(SWEEP_VARIANTS).join('; ')}`, 'all')
  .option('--grid-variants <names>', "EvoSearch settings run beside the methods at every budget of the grid ('none' for none)", 'sharing')
  .option('--small <bundle>', 'small model of the equal-time study', 'tiny-sd')
  .option('--large <bundle>', 'large model of the equal-time study', 'tiny-sd-large')
  .option('--small-budgets <nfes>', "budgets of the small model with search ('none': skip)", '250,1000,2500')
  .option('--large-budgets <nfes>', "budgets of the large model with EvoSearch ('none': skip)", '250,1000')
  .option('--single-samples <n>', 'single samples (no search) of the large model per prompt', '4')
  .option('--shard <i/n>', 'run the i-th of n shares of the work', '0/1')
  .option('--parallel <n>', 'run n shards at once as child processes (give each --threads cores); not for timing studies', '1')
  .option('--threads <n>', "onnxruntime threads per session (default: onnxruntime's choice)")
  .requiredOption('--results <file>', 'JSON-lines file to append to')
  .option('--skip-done <files>', 'comma list of results files whose searches are not run again')
  .action(async (flags: MeasureFlags & { parallel: string }) => {
    const parallel = Number(flags.parallel);
    if (parallel > 1) return measureInParallel(parallel, flags.results);
    const mine = units(flags);
    const total = mine.reduce((a, u) => a + u.jobs.length, 0);
    let done = 0;
    for (const unit of mine) {
      await measureUnit(unit, {
        bundlesDir: flags.bundlesDir,
        ...(flags.threads !== undefined ? { intraOpThreads: Number(flags.threads) } : {}),
        onResult: (result) => {
          appendFileSync(flags.results, `${JSON.stringify(result)}\n`);
          done += 1;
          process.stderr.write(`[${done}/${total}] ${result.bundle} ${result.method} ${result.variant} ${result.budgetNfe} NFE "${result.prompt}": ${result.guidance.toFixed(2)} in ${(result.wallMs / 1000).toFixed(1)} s\n`);
        },
      });
    }
  });

program
  .command('report')
  .description('write the markdown report and its plots from results files')
  .argument('<results...>', 'JSON-lines files written by measure')
  .option('--out <dir>', 'report folder', join(root, 'bench', 'reports', 'search-quality'))
  .option('--notes <file>', 'markdown to put under the title (machine, commands)')
  .action(async (files: string[], flags: { out: string; notes?: string }) => {
    const results = files.flatMap(readResults);
    // Imported here: the plotting libraries are development dependencies, not needed to measure.
    const { writeQualityReport } = await import('./search-quality/write-report.js');
    const written = await writeQualityReport(results, { folder: flags.out, ...(flags.notes ? { notes: readFileSync(flags.notes, 'utf8') } : {}) });
    console.log(written.join('\n'));
  });

await program.parseAsync();
