/**
 * The SD 2.1 layout contract: a tiny random-weight folder with exactly optimum's SD 2.1 export layout
 * (names, dtypes, ranks, external U-Net data, CLIP tokenizer files, the published scheduler config),
 * built by models/scripts/make_sd21_layout_fixture.py, loads UNCHANGED and runs real search commands
 * through the real executor and a whole EvoSearch through the engine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { ThreadPool } from '../worker/thread-pool.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { parseRunConfig, resolveRunConfig } from '../config/resolve-run-config.js';
import { createSampler, resolveSamplerConfig, type SamplerConfig } from '../samplers/index.js';
import { OnnxGenerativeModel } from '../worker/bundles/onnx-generative-model.js';
import { bundleSamplerConfig } from '../worker/bundles/scheduler-config.js';
import { CommandExecutor } from '../worker/executor.js';
import { ModelLoadError, openModel } from '../worker/models/load-model.js';
import { OnnxSession } from '../worker/runtime/onnx-session.js';
import { floatTensor, readFloats, timestepTensor } from '../worker/runtime/tensors.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
const SD21 = fixture('sd21-layout');
const SD21_FP16 = fixture('sd21-layout-fp16');
const REWARDS = fixture('tiny-rewards/rewards.json');
const PROMPT = 'a photo of a cat';

const allFinite = (xs: ArrayLike<number>) => Array.from(xs).every(Number.isFinite);

describe('SD 2.1 layout contract', () => {
  it('maps the published SD 2.1 scheduler config to DDIM, v_prediction, leading spacing, with the search eta', async () => {
    const config = await bundleSamplerConfig(SD21, { steps: 10, eta: 1 });
    const resolved = resolveSamplerConfig(config);
    assert.equal(resolved.kind, 'ddim');
    if (resolved.kind !== 'ddim') return;
    assert.equal(resolved.prediction_type, 'v_prediction');
    assert.equal(resolved.timestep_spacing, 'leading');
    assert.equal(resolved.steps_offset, 1);
    assert.equal(resolved.set_alpha_to_one, false);
    assert.equal(resolved.clip_sample, false);
    assert.equal(resolved.beta_schedule, 'scaled_linear');
    assert.equal(resolved.eta, 1);
    assert.deepEqual(createSampler(config).timesteps, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  });

  it('loads the folder unchanged and reports the provider that opened each part', async () => {
    const model = await OnnxGenerativeModel.load(SD21, { prompt: PROMPT, guidanceScale: 7.5, rewards: REWARDS, providers: ['cuda', 'cpu'] });
    try {
      assert.deepEqual(model.denoiser.latentShape, [4, 8, 8]);
      assert.deepEqual(model.decoder.sampleShape, [3, 64, 64]);
      assert.equal(model.denoiser.prediction, 'v_prediction');
      assert.equal(model.denoiser.forwardPassesPerNfe, 2);
      assert.deepEqual(model.rewards.map((r) => [r.name, r.role]), [['prompt-image-score', 'guidance'], ['image-score', 'held-out']]);
      assert.deepEqual(model.sessions.map((s) => s.part), ['text_encoder', 'unet', 'vae_decoder', 'reward:prompt-image-score', 'reward:image-score']);
      for (const s of model.sessions) {
        assert.equal(s.provider, 'cpu');
        assert.equal(s.attempts[0]!.provider, 'cuda');
        assert.equal(s.attempts[0]!.ok, false);
      }
      assert.match(model.describe(), /all parts on cpu \(cuda failed: /);
      // SD 2.x pads with "!" (id 0), not <|endoftext|>.
      assert.equal(model.tokenizer.padId, 0);
    } finally {
      await model.release();
    }
  });

  it('classifier-free guidance: one U-Net call on [uncond; cond] combined as uncond + w (cond - uncond)', async () => {
    const w = 7.5;
    const guided = await OnnxGenerativeModel.load(SD21, { prompt: PROMPT, negativePrompt: 'blurry', guidanceScale: w, rewards: REWARDS });
    const plain = await OnnxGenerativeModel.load(SD21, { prompt: PROMPT, guidanceScale: 1, rewards: REWARDS });
    const uncondOnly = await OnnxGenerativeModel.load(SD21, { prompt: 'blurry', guidanceScale: 1, rewards: REWARDS });
    try {
      const size = guided.denoiser.latentSize;
      const latents = Float32Array.from({ length: 2 * size }, (_, i) => Math.sin(i * 0.37));
      const time = { timestep: 501, signalScale: 0.5, noiseScale: 0.8 };
      const out = new Float32Array(2 * size);
      await guided.denoiser.predict(latents, 2, time, out);
      assert.equal(guided.denoiser.calls, 1, 'both halves in one graph call');
      const cond = new Float32Array(2 * size);
      const uncond = new Float32Array(2 * size);
      await plain.denoiser.predict(latents, 2, time, cond);
      await uncondOnly.denoiser.predict(latents, 2, time, uncond);
      assert.equal(plain.denoiser.forwardPassesPerNfe, 1);
      for (let i = 0; i < out.length; i++) {
        const expected = uncond[i]! + w * (cond[i]! - uncond[i]!);
        assert.ok(Math.abs(out[i]! - expected) < 1e-4 * (1 + Math.abs(expected)), `element ${i}: ${out[i]} vs ${expected}`);
      }
      // The prompt matters: cond and uncond differ, so guidance is not a no-op.
      assert.ok(cond.some((v, i) => Math.abs(v - uncond[i]!) > 1e-6));
    } finally {
      await Promise.all([guided.release(), plain.release(), uncondOnly.release()]);
    }
  });

  it('feeds the rank-0 float timestep as declared (the U-Net graph read directly agrees)', async () => {
    const session = await OnnxSession.open(`${SD21}/unet/model.onnx`);
    try {
      assert.equal(session.input('timestep').rank, 0);
      assert.equal(session.input('timestep').type, 'float32');
      assert.deepEqual(session.input('encoder_hidden_states').dims, ['batch_size', 77, 32]);
      const sample = new Float32Array(4 * 8 * 8).fill(0.1);
      const context = new Float32Array(77 * 32).fill(0.2);
      const result = await session.run({
        sample: floatTensor('float32', sample, [1, 4, 8, 8]),
        timestep: timestepTensor({ type: 'float32', rank: 0 }, 981, 1),
        encoder_hidden_states: floatTensor('float32', context, [1, 77, 32]),
      });
      assert.deepEqual(result.out_sample!.dims, [1, 4, 8, 8]);
      assert.ok(allFinite(readFloats(result.out_sample!, 'out_sample')));
    } finally {
      await session.release();
    }
  });

  it('runs init, advance 0 -> 2 and a scored rollout from 2 through the real executor', async () => {
    const sampler = createSampler(await bundleSamplerConfig(SD21, { steps: 10, eta: 1 }));
    const model = await openModel(SD21, { prediction: sampler.prediction, prompt: PROMPT, guidanceScale: 7.5, rewards: REWARDS });
    const executor = new CommandExecutor(model, sampler, 11n, { batchSize: 3 });
    const ids = [0, 1, 2, 3];
    await executor.execute({ kind: 'init', ids });
    const advanced = await executor.execute({ kind: 'advance', ids, from: 0, to: 2, purpose: 'advance' });
    assert.equal(advanced.counters.nfe, 8);
    assert.equal(advanced.counters.forwardPasses, 16, 'two forward passes per NFE with CFG');
    for (const id of ids) {
      const state = executor.store.get(id, 'test');
      assert.equal(state.step, 2);
      assert.ok(allFinite(state.latent));
    }
    const rollout = await executor.execute({ kind: 'rollout', items: ids.map((id) => ({ source: id, from: 2, archive: [], finalId: 100 + id })) });
    assert.equal(rollout.counters.nfe, 4 * 8);
    assert.equal(rollout.counters.forwardPasses, 2 * 4 * 8);
    assert.equal(rollout.counters.decodes, 4);
    assert.equal(rollout.counters.rewardCalls, 4);
    assert.equal(rollout.scores.length, 4);
    for (const score of rollout.scores) {
      assert.ok(Number.isFinite(score.reward));
      assert.ok(Number.isFinite(score.metrics!['image-score']!));
    }
    // Distinct noise per trajectory gives distinct rewards.
    assert.ok(new Set(rollout.scores.map((s) => s.reward)).size > 1);
    const fetched = await executor.execute({ kind: 'fetch', ids: [100] });
    const image = fetched.samples[0]!;
    assert.deepEqual(image.shape, [3, 64, 64]);
    assert.ok(Array.from(image.data).every((v) => v >= 0 && v <= 1));
    await (model as OnnxGenerativeModel).release();
  });

  it('refuses a sampler whose prediction type contradicts the bundle', async () => {
    await assert.rejects(openModel(SD21, { prediction: 'epsilon', prompt: PROMPT, rewards: REWARDS }), (error: unknown) => error instanceof ModelLoadError && /predicts 'v_prediction'.*expects 'epsilon'/.test(error.message));
    await assert.rejects(openModel(`bundle:${SD21}`, { prediction: 'v_prediction' }), /needs a prompt/);
  });

  it('fp16 graph IO and fixed-batch graphs: the fp16 variant agrees with fp32 to half precision', async () => {
    const fp32 = await OnnxGenerativeModel.load(SD21, { prompt: PROMPT, guidanceScale: 3, rewards: REWARDS });
    // Uses the rewards.json inside the fp16 bundle.
    const fp16 = await OnnxGenerativeModel.load(SD21_FP16, { prompt: PROMPT, guidanceScale: 3 });
    try {
      assert.equal(fp16.denoiser.latentSize, fp32.denoiser.latentSize);
      const size = fp32.denoiser.latentSize;
      const latents = Float32Array.from({ length: 3 * size }, (_, i) => Math.cos(i * 0.11));
      const time = { timestep: 301, signalScale: 0.8, noiseScale: 0.6 };
      const a = new Float32Array(3 * size);
      const b = new Float32Array(3 * size);
      await fp32.denoiser.predict(latents, 3, time, a);
      await fp16.denoiser.predict(latents, 3, time, b);
      // The fp16 U-Net's batch is fixed at 2: 3 latents x 2 CFG rows = 6 rows in 3 calls.
      assert.equal(fp16.denoiser.calls, 3);
      const scale = Math.max(...Array.from(a, Math.abs));
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 0.02 * scale, `element ${i}: ${a[i]} vs ${b[i]}`);
      const imagesA = new Float32Array(3 * fp32.decoder.sampleSize);
      const imagesB = new Float32Array(3 * fp16.decoder.sampleSize);
      await fp32.decoder.decode(latents, 3, imagesA);
      await fp16.decoder.decode(latents, 3, imagesB); // decoder batch fixed at 1
      for (let i = 0; i < imagesA.length; i += 97) assert.ok(Math.abs(imagesA[i]! - imagesB[i]!) < 0.01, `pixel ${i}`);
      const scores = new Float64Array(3);
      await fp16.rewards[0]!.score(imagesB, 3, scores);
      assert.ok(allFinite(scores));
    } finally {
      await Promise.all([fp32.release(), fp16.release()]);
    }
  });

  it('a whole EvoSearch through the engine on the fixture (10 steps, small budget)', async () => {
    const samplerConfig: SamplerConfig = await bundleSamplerConfig(SD21, { steps: 10, eta: 1 });
    const plan = resolveRunConfig(parseRunConfig({ model: SD21, prompt: PROMPT, method: 'evosearch', budgetNfe: 120, seed: 4, sampler: samplerConfig, batchSize: 8 }, 'test'), 'test');
    const sampler = createSampler(plan.sampler);
    assert.equal(sampler.prediction, 'v_prediction');
    const models = await Promise.all([0, 1].map(() => openModel(plan.model, { prediction: sampler.prediction, prompt: plan.prompt!, guidanceScale: plan.guidanceScale, rewards: REWARDS })));
    try {
      const pool = new InProcessPool(models.map((m) => new CommandExecutor(m, sampler, BigInt(plan.seed), { batchSize: plan.batchSize })));
      const outcome = await runSearch(createSearch(plan, sampler), new Dispatcher(pool));
      assert.equal(outcome.counters.nfe, plan.planned.evosearch.nfe);
      assert.equal(outcome.counters.forwardPasses, 2 * outcome.counters.nfe);
      assert.ok(outcome.best !== null && Number.isFinite(outcome.best.reward));
      assert.ok(outcome.candidates.length > 0);
    } finally {
      await Promise.all(models.map((m) => (m as OnnxGenerativeModel).release()));
    }
  });

  it('worker threads open a bundle (with its own rewards.json) and run commands', async () => {
    const samplerConfig = await bundleSamplerConfig(SD21_FP16, { steps: 10, eta: 1 });
    const plan = resolveRunConfig(parseRunConfig({ model: SD21_FP16, prompt: PROMPT, method: 'best-of-n', budgetNfe: 120, seed: 2, sampler: samplerConfig, batchSize: 4, providers: ['cpu'] }, 'test'), 'test');
    const pool = await ThreadPool.start(1, workerSetupFor(plan));
    try {
      assert.match(pool.describe(0), /bundle:/);
      const [, advanced] = await pool.execute(0, [{ kind: 'init', ids: [1, 2] }, { kind: 'advance', ids: [1, 2], from: 0, to: 10, purpose: 'advance', score: true }]);
      assert.equal(advanced!.counters.nfe, 20);
      assert.equal(advanced!.counters.forwardPasses, 40);
      assert.ok(advanced!.scores.every((s) => Number.isFinite(s.reward)));
    } finally {
      await pool.close();
    }
  });
});
