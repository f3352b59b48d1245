import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch, type SearchOutcome } from '../coordinator/engine/run-search.js';
import { WorkerLostError, type WorkerPool } from '../proto/worker-pool.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { resolveRunConfig, type MethodName, type RunPlan } from '../config/resolve-run-config.js';
import type { Command, CommandResult } from '../proto/commands.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel, openModel } from '../worker/models/load-model.js';
import { watchDenoiser } from './support/watched-denoiser.js';
import { planRun } from '../config/plan-run.js';
import { join } from 'node:path';
import { repoRoot } from './support/repo-root.js';
import { searchDecisions } from './support/search-decisions.js';

function executors(plan: RunPlan, count: number): CommandExecutor[] {
  const sampler = createSampler(plan.sampler);
  const model = loadModel(plan.model, { prediction: sampler.prediction });
  return Array.from({ length: count }, () => new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize }));
}

/** Workers in this process, one of which dies at its `dieAt`-th batch (its states go with it). */
class DyingPool implements WorkerPool {
  private readonly inner: InProcessPool;
  private batches = 0;
  dead = false;
  constructor(private readonly workers: CommandExecutor[], private readonly victim: number, private readonly dieAt: number) {
    this.inner = new InProcessPool(workers);
  }
  get size(): number {
    return this.workers.length;
  }
  describe(index: number): string {
    return `#${index}`;
  }
  async execute(index: number, commands: readonly Command[]): Promise<CommandResult[]> {
    if (index === this.victim) {
      this.batches += 1;
      if (this.batches >= this.dieAt) this.dead = true;
      if (this.dead) throw new WorkerLostError(`#${index}`, 'process killed');
    }
    return this.inner.execute(index, commands);
  }
  async close(): Promise<void> {}
}

const decisions = searchDecisions;

describe('a lost worker: its states are rebuilt from their recipes and nothing changes', () => {
  for (const method of ['evosearch', 'best-of-n', 'particles'] as MethodName[]) {
    // Best-of-N gives a worker only two batches (its samples, then the fetch of the best).
    for (const dieAt of method === 'best-of-n' ? [1, 2] : [2, 4]) {
      it(`${method}: worker 1 of 3 dies at its batch ${dieAt}; same decisions, same compute, same best`, async () => {
        const plan = resolveRunConfig({ method, budgetNfe: 5000, seed: 21 });
        const sampler = createSampler(plan.sampler);
        const reference = await runSearch(createSearch(plan, sampler), new Dispatcher(new InProcessPool(executors(plan, 3))), { population: 4 });
        const pool = new DyingPool(executors(plan, 3), 1, dieAt);
        const dispatcher = new Dispatcher(pool);
        const outcome = await runSearch(createSearch(plan, sampler), dispatcher, { population: 4 });
        assert.ok(pool.dead, 'the worker never died: the test proves nothing');
        assert.deepEqual(decisions(outcome), decisions(reference));
        assert.deepEqual(outcome.population.map((s) => [...s.data]), reference.population.map((s) => [...s.data]));
        assert.equal(dispatcher.stats.lostWorkers, 1);
        assert.ok(dispatcher.stats.rebuiltStates > 0 || method === 'best-of-n', 'no state was rebuilt');
      });
    }
  }

  it('losing every worker fails the run, naming the last loss', async () => {
    const plan = resolveRunConfig({ budgetNfe: 2000, seed: 2 });
    const pool = new DyingPool(executors(plan, 1), 0, 2);
    await assert.rejects(runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(pool)), /every worker is lost/);
  });
});

describe('a lost worker of an ONNX bundle', () => {
  it('tiny-sd: the rebuild batches its states (fewer model calls than the run itself made) and changes nothing', async (t) => {
    const plan = await planRun({ model: join(repoRoot(), 'models', 'bundles', 'tiny-sd'), prompt: 'two red circles left of a blue square', budgetNfe: 1500, seed: 3 }, 'test');
    const sampler = createSampler(plan.sampler);
    let calls = 0;
    const model = watchDenoiser(await openModel(plan.model, { prediction: sampler.prediction, prompt: plan.prompt!, guidanceScale: plan.guidanceScale }), () => {
      calls += 1;
    });
    const make = () => [0, 1, 2].map(() => new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize }));
    const reference = await runSearch(createSearch(plan, sampler), new Dispatcher(new InProcessPool(make())));
    const runCalls = calls;
    const pool = new DyingPool(make(), 1, 4);
    const dispatcher = new Dispatcher(pool);
    const outcome = await runSearch(createSearch(plan, sampler), dispatcher);
    assert.ok(pool.dead && dispatcher.stats.rebuiltStates > 0, 'no state was rebuilt: the test proves nothing');
    assert.deepEqual(decisions(outcome), decisions(reference));
    // The disturbed run's own calls are the reference's; what is over is the rebuild's.
    const rebuildCalls = calls - 2 * runCalls;
    t.diagnostic(`rebuilt ${dispatcher.stats.rebuiltStates} states in ${rebuildCalls} denoiser calls; the run itself made ${runCalls}`);
    assert.ok(rebuildCalls <= runCalls, `rebuilding ${dispatcher.stats.rebuiltStates} states took ${rebuildCalls} denoiser calls; the whole run took ${runCalls}`);
  });
});
