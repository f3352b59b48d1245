import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { resolveRunConfig, type MethodName } from '../config/resolve-run-config.js';
import type { Command, CommandResult } from '../proto/commands.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';

/** In-process workers that tally the denoising work (NFEs) each one is given. */
class CountingPool extends InProcessPool {
  readonly work: number[];
  constructor(executors: CommandExecutor[]) {
    super(executors);
    this.work = executors.map(() => 0);
  }
  override async execute(index: number, commands: readonly Command[]): Promise<CommandResult[]> {
    const results = await super.execute(index, commands);
    for (const r of results) this.work[index]! += r.counters.nfe;
    return results;
  }
}

async function run(method: MethodName, workers: number, balance: boolean) {
  const plan = resolveRunConfig({ method, budgetNfe: 20000, seed: 3 });
  const sampler = createSampler(plan.sampler);
  const pool = new CountingPool(Array.from({ length: workers }, () => new CommandExecutor(loadModel(plan.model, { prediction: sampler.prediction }), sampler, 3n, { batchSize: 64 })));
  const dispatcher = new Dispatcher(pool, { balance });
  const outcome = await runSearch(createSearch(plan, sampler), dispatcher);
  return { outcome, work: pool.work };
}

describe('dispatcher placement', () => {
  for (const method of ['evosearch', 'particles'] as const) {
    it(`${method}: spreads the denoising work evenly over 4 workers, moving and counting parent states`, async () => {
      const balanced = await run(method, 4, true);
      const mean = balanced.work.reduce((a, b) => a + b, 0) / 4;
      assert.ok(Math.max(...balanced.work) / mean < 1.05, `work per worker ${balanced.work}`);
      assert.ok(balanced.outcome.placement.transfers > 0);
      // Each move carries one 8-float latent, plus the solver memory or cached output the state holds.
      assert.ok(balanced.outcome.placement.bytesMoved >= balanced.outcome.placement.transfers * 8 * 4);
      // Without balancing, children pile up with their parents: same search, uneven work, no moves.
      const local = await run(method, 4, false);
      assert.equal(local.outcome.placement.transfers, 0);
      assert.ok(Math.max(...local.work) / mean > 1.2, `unbalanced work per worker ${local.work}`);
      assert.deepEqual(local.outcome.best, balanced.outcome.best);
      assert.deepEqual(
        local.outcome.candidates.map((c) => c.evaluations),
        balanced.outcome.candidates.map((c) => c.evaluations),
      );
    });
  }
});
