import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { needsScoreEmbeddings, workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { planRun } from '../config/plan-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { resultsFromWire, resultsToWire, TensorTable } from '../proto/command-messages.js';
import type { CommandResult } from '../proto/commands.js';
import { setupFromWire, setupToWire } from '../proto/setup-message.js';
import { TO_OBJECT, workerType } from '../proto/worker-proto.js';
import type { WorkerSetup } from '../proto/worker-setup.js';

/** A setup through the RunSetup message's bytes and back. */
function overTheWire(setup: WorkerSetup): WorkerSetup {
  const type = workerType('RunSetup');
  return setupFromWire(type.toObject(type.decode(type.encode(type.fromObject(setupToWire(setup))).finish()), TO_OBJECT));
}
import { createSampler } from '../samplers/index.js';
import type { EvoSearch } from '../search/evosearch.js';
import { CommandExecutor } from '../worker/executor.js';
import { openModel } from '../worker/models/load-model.js';
import { repoRoot } from './support/repo-root.js';

describe('scores with embeddings', () => {
  it('an embedding crosses the wire as a tensor, exactly; a score without one stays without', () => {
    const embedding = Float32Array.of(0.6, -0.8, 1e-7);
    const results: CommandResult[] = [{ kind: 'rollout', scores: [{ id: 3, reward: 1.5, embedding }, { id: 4, reward: 2 }], samples: [], counters: { nfe: 1, forwardPasses: 1, decodes: 1, rewardCalls: 1 } }];
    const table = new TensorTable();
    const back = resultsFromWire(resultsToWire(results, table), table.tensors);
    assert.deepEqual(back[0]!.scores[0]!.embedding, embedding);
    assert.equal(back[0]!.scores[1]!.embedding, undefined);
  });

  it('the run setup asks for embeddings only for EvoSearch with sharing, and the flag survives the wire', () => {
    assert.equal(needsScoreEmbeddings(resolveRunConfig({ method: 'evosearch' })), false);
    const sharing = resolveRunConfig({ method: 'evosearch', evosearch: { selection: 'sharing' } });
    assert.equal(needsScoreEmbeddings(sharing), true);
    assert.equal(needsScoreEmbeddings(resolveRunConfig({ method: 'best-of-n', evosearch: { selection: 'sharing' } })), false);
    assert.equal(overTheWire(workerSetupFor(sharing)).scoreEmbeddings, true);
    assert.equal(overTheWire(workerSetupFor(resolveRunConfig({}))).scoreEmbeddings, undefined);
  });

  it('a sharing radius without selection sharing is refused, naming the field', () => {
    assert.throws(() => resolveRunConfig({ evosearch: { sharingRadius: 0.5 } }), /evosearch\.sharingRadius/);
  });

  it('EvoSearch with sharing on tiny-sd gives the same answer on 1 and on 3 workers', async () => {
    const folder = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
    const prompt = 'two red circles left of a blue square';
    const plan = await planRun({ model: folder, prompt, method: 'evosearch', budgetNfe: 500, seed: 4, evosearch: { selection: 'sharing' } }, 'test');
    const sampler = createSampler(plan.sampler);
    const model = await openModel(plan.model, { prediction: sampler.prediction, prompt, guidanceScale: plan.guidanceScale, intraOpThreads: 1 });
    try {
      const once = async (workers: number) => {
        const pool = new InProcessPool(Array.from({ length: workers }, () => new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize, scoreEmbeddings: true })));
        const machine = createSearch(plan, sampler) as EvoSearch;
        const outcome = await runSearch(machine, new Dispatcher(pool));
        return { best: outcome.best, selections: machine.selections(), rewards: outcome.candidates.map((c) => c.reward) };
      };
      const one = await once(1);
      const three = await once(3);
      // The same search: the same selections and winner. Rewards may differ in the last float bits,
      // because onnxruntime's kernels round differently at another batch size (3 workers batch less).
      assert.deepEqual(three.selections, one.selections);
      assert.equal(three.best?.candidate, one.best?.candidate);
      assert.equal(three.rewards.length, one.rewards.length);
      three.rewards.forEach((r, i) => assert.ok(Math.abs((r ?? 0) - (one.rewards[i] ?? 0)) < 1e-3, `candidate ${i}: reward ${r} on 3 workers, ${one.rewards[i]} on 1`));
      assert.ok(one.selections.length > 0);
    } finally {
      await (model as { release?: () => Promise<void> }).release?.();
    }
  });
});
