import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSampler } from '../samplers/index.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { coalescingModel } from '../worker/coalescing-model.js';
import type { GenerativeModel } from '../worker/models/generator.js';
import { loadModel } from '../worker/models/load-model.js';
import { watchDenoiser } from './support/watched-denoiser.js';

const plan = resolveRunConfig({ budgetNfe: 1000, seed: 1 });
const sampler = createSampler(plan.sampler);

/** The analytic model with its denoiser's batch sizes recorded, and a way to make it fail. */
function recorded(): { model: GenerativeModel; batches: number[]; fail: { now: boolean } } {
  const batches: number[] = [];
  const fail = { now: false };
  const model = watchDenoiser(loadModel(plan.model, { prediction: sampler.prediction }), (batch) => {
    if (fail.now) throw new Error('the model broke');
    batches.push(batch);
  });
  return { model, batches, fail };
}

const latent = (size: number, k: number) => Float32Array.from({ length: size }, (_, i) => Math.sin(k * 7 + i));

describe('coalescingModel: concurrent calls merge into batches', () => {
  it('calls at the same step merge up to the batch limit, each getting what it would alone', async () => {
    const { model, batches } = recorded();
    const merged = coalescingModel(model, 4);
    const size = model.denoiser.latentSize;
    const time = sampler.time(3);
    const outs = Array.from({ length: 10 }, () => new Float32Array(size));
    await Promise.all(outs.map((out, k) => merged.denoiser.predict(latent(size, k), 1, time, out)));
    assert.deepEqual(batches, [4, 4, 2]);
    for (const [k, out] of outs.entries()) {
      const alone = new Float32Array(size);
      await model.denoiser.predict(latent(size, k), 1, time, alone);
      assert.deepEqual(out, alone, `call ${k}`);
    }
  });

  it('calls at different steps do not merge', async () => {
    const { model, batches } = recorded();
    const merged = coalescingModel(model, 64);
    const size = model.denoiser.latentSize;
    await Promise.all([1, 2, 1, 2, 5].map((step, k) => merged.denoiser.predict(latent(size, k), 1, sampler.time(step), new Float32Array(size))));
    assert.deepEqual(batches.sort(), [1, 2, 2]);
  });

  it('a failing model call fails every call merged into it, and later calls still run', async () => {
    const { model, fail } = recorded();
    const merged = coalescingModel(model, 64);
    const size = model.denoiser.latentSize;
    fail.now = true;
    const calls = [0, 1, 2].map((k) => Promise.resolve(merged.denoiser.predict(latent(size, k), 1, sampler.time(1), new Float32Array(size))));
    await Promise.all(calls.map((call) => assert.rejects(call, /the model broke/)));
    fail.now = false;
    await merged.denoiser.predict(latent(size, 0), 1, sampler.time(1), new Float32Array(size));
  });
});
