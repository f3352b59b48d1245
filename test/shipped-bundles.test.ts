import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { planRun } from '../config/plan-run.js';
import type { MethodName } from '../config/resolve-run-config.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { openModel } from '../worker/models/load-model.js';

/** The bundles the project ships (override with EVOSEARCH_BUNDLES_DIR to test another set). */
const root = fileURLToPath(new URL('../..', import.meta.url));
const bundlesDir = process.env.EVOSEARCH_BUNDLES_DIR ?? join(root, 'models', 'bundles');
const bundles = existsSync(bundlesDir) ? readdirSync(bundlesDir).filter((name) => existsSync(join(bundlesDir, name, 'model_index.json'))).sort() : [];

function family(name: string): string {
  const index = JSON.parse(readFileSync(join(bundlesDir, name, 'model_index.json'), 'utf8')) as { _evosearch?: { family?: string } };
  return index._evosearch?.family ?? 'sd';
}

async function search(folder: string, prompt: string, method: MethodName) {
  const plan = await planRun({ model: folder, prompt, method, budgetNfe: 400, seed: 4 }, 'test');
  const sampler = createSampler(plan.sampler);
  const model = await openModel(plan.model, { prediction: sampler.prediction, prompt, guidanceScale: plan.guidanceScale });
  const pool = new InProcessPool([new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: 64 })]);
  const outcome = await runSearch(createSearch(plan, sampler), new Dispatcher(pool));
  return { plan, outcome, model };
}

describe('shipped model bundles, end to end', () => {
  it('the project ships an image, a large image, a flow and a video bundle', () => {
    assert.ok(bundles.length > 0, `no bundles found under ${bundlesDir}`);
    const families = bundles.map(family).sort();
    for (const expected of ['flux', 'sd', 'video']) assert.ok(families.includes(expected), `no '${expected}' bundle among ${bundles.join(', ')}`);
  });

  for (const name of bundles) {
    const video = family(name) === 'video';
    const prompt = video ? 'a blue square and a green triangle moving up' : 'two red circles left of a blue square';
    for (const method of ['evosearch', 'best-of-n'] as const) {
      it(`${name}: ${method} on "${prompt}" over the real ONNX models`, async () => {
        const { plan, outcome, model } = await search(join(bundlesDir, name), prompt, method);
        assert.equal(outcome.counters.nfe, plan.planned[method].nfe);
        assert.equal(outcome.counters.forwardPasses, outcome.counters.nfe * model.denoiser.forwardPassesPerNfe);
        assert.ok(outcome.best !== null && Number.isFinite(outcome.best.reward));
        const best = outcome.candidates[outcome.best.sampleId]!;
        const checker = best.metrics?.['composition-checker'];
        assert.ok(checker !== undefined && checker >= 0 && checker <= 1, `composition-checker metric ${checker}`);
        assert.deepEqual(outcome.bestSample!.shape, video ? [8, 3, 32, 32] : [3, 32, 32]);
        assert.ok(outcome.bestSample!.data.every((v) => v >= 0 && v <= 1));
      });
    }

    it(`${name}: its scorers give unit-norm image embeddings that tell samples apart`, async () => {
      const { outcome, model } = await search(join(bundlesDir, name), prompt, 'best-of-n');
      const samples = [outcome.bestSample!, ...(await runFinal(join(bundlesDir, name), prompt))];
      const per = samples[0]!.data.length;
      const batch = new Float32Array(samples.length * per);
      samples.forEach((s, i) => batch.set(s.data, i * per));
      for (const reward of model.rewards) {
        if (reward.embed === undefined) continue;
        const size = reward.embeddingSize!;
        const rows = await reward.embed(batch, samples.length);
        assert.equal(rows.length, samples.length * size, reward.name);
        for (let i = 0; i < samples.length; i++) {
          const norm = Math.hypot(...rows.subarray(i * size, (i + 1) * size));
          assert.ok(Math.abs(norm - 1) < 1e-3, `${reward.name}: row ${i} has norm ${norm}`);
        }
        const distance = rows.subarray(0, size).reduce((a, v, k) => a + (v - rows[size + k]!) ** 2, 0);
        assert.ok(distance > 1e-4, `${reward.name}: two different samples embed ${distance} apart`);
        // Scoring and embedding see the same batch the same way: embedding one sample alone gives its row.
        const alone = await reward.embed(batch.subarray(per, 2 * per), 1);
        assert.ok(alone.every((v, k) => Math.abs(v - rows[size + k]!) < 1e-5), `${reward.name}: batch-dependent embedding`);
      }
      assert.ok(model.rewards.some((r) => r.embed !== undefined), 'no scorer exposes an embedding');
    });
  }
});

/** A few final samples of a different seed, to compare with. */
async function runFinal(folder: string, prompt: string) {
  const plan = await planRun({ model: folder, prompt, method: 'best-of-n', budgetNfe: 100, seed: 11 }, 'test');
  const sampler = createSampler(plan.sampler);
  const model = await openModel(plan.model, { prediction: sampler.prediction, prompt, guidanceScale: plan.guidanceScale });
  const pool = new InProcessPool([new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: 64 })]);
  const outcome = await runSearch(createSearch(plan, sampler), new Dispatcher(pool), { population: 2 });
  return outcome.population.filter((s) => s.id !== outcome.best?.sampleId).slice(0, 1);
}
