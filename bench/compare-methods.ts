/**
 * The three methods on the analytic task at equal NFE budgets: reward of the returned sample, the
 * held-out metrics, and what each actually spent. Prints a markdown table.
 *
 *   npm run build && node dist/bench/compare-methods.js [--budgets 1000,2500,5000] [--seeds 8] [--model analytic:gmm]
 */
import { parseArgs } from 'node:util';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { resolveRunConfig, type MethodName } from '../config/resolve-run-config.js';
import { METHOD_NAMES } from '../search/machine.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';

const { values } = parseArgs({
  options: {
    budgets: { type: 'string', default: '1000,2500,5000' },
    seeds: { type: 'string', default: '8' },
    model: { type: 'string', default: 'analytic:gmm' },
    preset: { type: 'string', default: 'sd21' },
  },
});
const budgets = values.budgets.split(',').map(Number);
const seeds = Number(values.seeds);
const methods: readonly MethodName[] = METHOD_NAMES;

interface Row {
  reward: number[];
  metrics: Map<string, number[]>;
  nfe: number[];
  decodes: number[];
  ms: number[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const stderr = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1) / xs.length));

async function measure(method: MethodName, budgetNfe: number, seed: number) {
  const plan = resolveRunConfig({ model: values.model, method, budgetNfe, seed, preset: values.preset as 'sd21' }, 'benchmark');
  const sampler = createSampler(plan.sampler);
  const model = loadModel(plan.model, { prediction: sampler.prediction });
  const pool = new InProcessPool([new CommandExecutor(model, sampler, BigInt(seed), { batchSize: plan.batchSize })]);
  const started = performance.now();
  const outcome = await runSearch(createSearch(plan, sampler), new Dispatcher(pool));
  const ms = performance.now() - started;
  const best = outcome.best === null ? null : outcome.candidates[outcome.best.sampleId]!;
  return { reward: outcome.best?.reward ?? Number.NaN, metrics: best?.metrics ?? {}, counters: outcome.counters, ms };
}

const table: string[] = [];
table.push(`Analytic task \`${values.model}\`, preset ${values.preset} sampler, ${seeds} seeds per cell; mean ± standard error of the returned sample's guidance reward (higher is better) and held-out metrics.`);
table.push('');
let header: string[] | null = null;
for (const budget of budgets) {
  for (const method of methods) {
    const row: Row = { reward: [], metrics: new Map(), nfe: [], decodes: [], ms: [] };
    for (let seed = 0; seed < seeds; seed++) {
      const r = await measure(method, budget, seed);
      row.reward.push(r.reward);
      for (const [k, v] of Object.entries(r.metrics)) row.metrics.set(k, [...(row.metrics.get(k) ?? []), v]);
      row.nfe.push(r.counters.nfe);
      row.decodes.push(r.counters.decodes);
      row.ms.push(r.ms);
    }
    if (header === null) {
      header = ['budget (NFE)', 'method', 'reward', ...row.metrics.keys(), 'NFE spent', 'decodes', 'ms per search'];
      table.push(`| ${header.join(' | ')} |`);
      table.push(`|${header.map(() => '---').join('|')}|`);
    }
    const cells = [
      String(budget),
      method,
      `${mean(row.reward).toFixed(4)} ± ${stderr(row.reward).toFixed(4)}`,
      ...[...row.metrics.values()].map((v) => `${mean(v).toFixed(3)} ± ${stderr(v).toFixed(3)}`),
      `${Math.min(...row.nfe)}${Math.max(...row.nfe) !== Math.min(...row.nfe) ? `–${Math.max(...row.nfe)}` : ''}`,
      mean(row.decodes).toFixed(0),
      mean(row.ms).toFixed(0),
    ];
    table.push(`| ${cells.join(' | ')} |`);
  }
}
console.log(table.join('\n'));
