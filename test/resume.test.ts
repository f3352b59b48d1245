import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch, type JournalEntry, type SearchOutcome } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/search/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { resolveRunConfig, type MethodName, type RunPlan } from '../config/resolve-run-config.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';
import { searchDecisions } from './support/search-decisions.js';

function pool(plan: RunPlan, count: number): InProcessPool {
  const sampler = createSampler(plan.sampler);
  const model = loadModel(plan.model, { prediction: sampler.prediction });
  return new InProcessPool(Array.from({ length: count }, () => new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize })));
}

const decisions = searchDecisions;

describe('resuming a search from its journal: the same answer as the uninterrupted run', () => {
  for (const method of ['evosearch', 'best-of-n', 'particles'] as MethodName[]) {
    it(`${method}: stopped after any round, resumed on other workers, gives the same decisions, compute and samples`, async () => {
      const plan = resolveRunConfig({ method, budgetNfe: 4000, seed: 5 });
      const sampler = createSampler(plan.sampler);
      const journal: JournalEntry[] = [];
      const uninterrupted = await runSearch(createSearch(plan, sampler), new Dispatcher(pool(plan, 2)), { population: 6, thumbnails: 8, onJournal: (e) => journal.push(e) });
      // After the first round, mid-way, and after the last (the resume only fetches the results).
      const stops = [...new Set([1, Math.floor(journal.length / 2), journal.length])].filter((k) => k >= 1 && k <= journal.length);
      assert.ok(stops.length > 0);
      for (const k of stops) {
        const dispatcher = new Dispatcher(pool(plan, 3));
        const resumed = await runSearch(createSearch(plan, sampler), dispatcher, { population: 6, thumbnails: 8, replay: journal.slice(0, k) });
        assert.deepEqual(decisions(resumed), decisions(uninterrupted), `resumed after round ${k}`);
        assert.deepEqual([...resumed.thumbnails.keys()].sort(), [...uninterrupted.thumbnails.keys()].sort(), 'thumbnails of replayed rounds kept');
        assert.ok(dispatcher.stats.rebuiltStates > 0 || method === 'best-of-n', 'no live state was rebuilt');
      }
    });
  }

  it('refuses a journal that does not answer the search (another configuration)', async () => {
    const plan = resolveRunConfig({ budgetNfe: 4000, seed: 5 });
    const journal: JournalEntry[] = [];
    await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(pool(plan, 1)), { onJournal: (e) => journal.push(e) });
    const other = resolveRunConfig({ method: 'particles', budgetNfe: 4000, seed: 5 });
    await assert.rejects(runSearch(createSearch(other, createSampler(other.sampler)), new Dispatcher(pool(other, 1)), { replay: journal.slice(0, 2) }), /does not answer the commands/);
  });
});
