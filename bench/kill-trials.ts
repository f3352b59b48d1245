/**
 * More kill -9 trials than the test suite runs: `evosearch run` killed at random points after its
 * first checkpoint, then `evosearch resume`; each result is compared with the undisturbed run's.
 * Prints a markdown table per configuration.
 *
 *   npm run build && node dist/bench/kill-trials.js [--trials 100] [--seed 1] [--max-delay-ms 600] [--no-snapshots]
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'evosearch.js');
const { values } = parseArgs({ options: { trials: { type: 'string', default: '100' }, seed: { type: 'string', default: '1' }, 'max-delay-ms': { type: 'string', default: '600' }, 'no-snapshots': { type: 'boolean', default: false } } });
// Without the workers' state snapshots every resume rebuilds the live states from their recipes.
const snapshotFlag = values['no-snapshots'] ? ['--no-snapshots'] : [];

const configs: Record<string, string[]> = {
  'evosearch 150k NFEs': ['--budget-nfe', '150000', '--seed', '2'],
  'particles 40k NFEs': ['--method', 'particles', '--budget-nfe', '40000', '--seed', '3'],
  'best-of-n 100k NFEs': ['--method', 'best-of-n', '--budget-nfe', '100000', '--seed', '4'],
};

interface RunRecord {
  best: unknown;
  spent: { nfe: number };
  candidates: { parents: unknown; reward: unknown; evaluations: unknown }[];
  placement: { rebuildCounters: { nfe: number } };
}
const decisions = (r: RunRecord) => JSON.stringify({ best: r.best, nfe: r.spent.nfe, candidates: r.candidates.map((c) => [c.parents, c.reward, c.evaluations]) });

async function rounds(folder: string): Promise<number> {
  try {
    return (JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as { rounds: number }).rounds;
  } catch {
    return 0;
  }
}

let state = Number(values.seed);
const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const dir = await mkdtemp(join(tmpdir(), 'kill-trials-'));
const rows: string[] = [];
try {
  const names = Object.keys(configs);
  const trials = Number(values.trials);
  for (const [c, name] of names.entries()) {
    const args = configs[name]!;
    await execFileAsync(process.execPath, [bin, 'run', ...args, '--no-progress', '--out', join(dir, `reference-${c}`)]);
    const reference = decisions(JSON.parse(await readFile(join(dir, `reference-${c}`, 'record.json'), 'utf8')) as RunRecord);
    let killed = 0;
    let identical = 0;
    let done = 0;
    let rebuildNfe = 0;
    for (let t = c; t < trials; t += names.length) {
      const folder = join(dir, `trial-${t}`);
      const child = spawn(process.execPath, [bin, 'run', ...args, ...snapshotFlag, '--no-progress', '--out', folder], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      while ((await rounds(folder)) < 1 && child.exitCode === null) await sleep(5);
      await sleep(Math.floor(random() * Number(values['max-delay-ms'])));
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        killed += 1;
      }
      await exited;
      if (!existsSync(join(folder, 'record.json'))) await execFileAsync(process.execPath, [bin, 'resume', folder, '--no-progress']);
      const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as RunRecord;
      if (decisions(record) === reference) identical += 1;
      rebuildNfe += record.placement.rebuildCounters.nfe;
      done += 1;
      await rm(folder, { recursive: true });
    }
    rows.push(`| ${name} | ${done} | ${killed} | ${identical} | ${done === 0 ? '–' : Math.round(rebuildNfe / done)} |`);
  }
} finally {
  await rm(dir, { recursive: true });
}
console.log(`kill -9 after the first checkpoint plus a random 0–${values['max-delay-ms']} ms, then evosearch resume (analytic:gmm, seed ${values.seed})`);
console.log('');
console.log('| configuration | trials | killed mid-run | identical to the undisturbed run | rebuild NFEs per resume (mean) |');
console.log('|---|---|---|---|---|');
console.log(rows.join('\n'));
