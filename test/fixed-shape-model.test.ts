import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { ThreadPool } from '../worker/thread-pool.js';
import { parseRunConfig, resolveRunConfig, type RunPlan } from '../config/resolve-run-config.js';
import { createSampler } from '../samplers/index.js';
import { CUDA_CALL_ROWS, callRowsFor, fixedShapeModel } from '../worker/fixed-shape-model.js';
import { evosearch } from './support/evosearch-cli.js';
import type { GenerativeModel } from '../worker/models/generator.js';

const plan = (input: Record<string, unknown>): RunPlan => resolveRunConfig(parseRunConfig(input, 'test'), 'test');

/** A model whose outputs are a function of each row alone, and which records every batch it is called with. */
function recordingModel(seen: number[]): GenerativeModel {
  const size = 3;
  const rowwise = (input: Float32Array, inSize: number, batch: number, out: Float32Array | Float64Array, outSize: number, f: (x: number, k: number) => number) => {
    seen.push(batch);
    for (let r = 0; r < batch; r++) for (let k = 0; k < outSize; k++) out[r * outSize + k] = f(input[r * inSize + (k % inSize)]!, k);
  };
  return {
    id: 'recording',
    denoiser: { latentSize: size, latentShape: [size], prediction: 'epsilon', forwardPassesPerNfe: 1, predict: (x, n, _t, y) => rowwise(x, size, n, y, size, (v, k) => v * 2 + k) },
    decoder: { sampleSize: 4, sampleShape: [4], decode: (x, n, y) => rowwise(x, size, n, y, 4, (v, k) => v - k) },
    rewards: [{ name: 'r', score: (x, n, y) => rowwise(x, 4, n, y, 1, (v) => -v), embeddingSize: 2, embed: async (x, n) => { const y = new Float32Array(n * 2); rowwise(x, 4, n, y, 2, (v, k) => v + 10 * k); return y; } }],
  };
}

describe('fixed-shape model calls (callRows)', () => {
  it('every call runs exactly `rows` rows, cut or padded, and the rows asked for get their own outputs', async () => {
    const seen: number[] = [];
    const inner = recordingModel(seen);
    const fixed = fixedShapeModel(inner, 4);
    const time = { index: 0, timestep: 999, t: 1 } as never;
    for (const batch of [1, 3, 4, 5, 9, 12]) {
      seen.length = 0;
      const latents = Float32Array.from({ length: batch * 3 }, (_, i) => Math.sin(i + batch));
      const want = new Float32Array(batch * 3);
      const got = new Float32Array(batch * 3).fill(NaN);
      await inner.denoiser.predict(latents, batch, time, want);
      seen.length = 0;
      await fixed.denoiser.predict(latents, batch, time, got);
      assert.ok(seen.every((n) => n === 4), `batch ${batch}: calls of ${seen.join(', ')}`);
      assert.equal(seen.length, Math.ceil(batch / 4));
      assert.deepEqual(got, want, `denoiser, batch ${batch}`);
      const samples = new Float32Array(batch * 4);
      await fixed.decoder.decode(latents, batch, samples);
      const wantSamples = new Float32Array(batch * 4);
      await inner.decoder.decode(latents, batch, wantSamples);
      assert.deepEqual(samples, wantSamples, `decoder, batch ${batch}`);
      const scores = new Float64Array(batch);
      const wantScores = new Float64Array(batch);
      await fixed.rewards[0]!.score(samples, batch, scores);
      await inner.rewards[0]!.score(samples, batch, wantScores);
      assert.deepEqual(scores, wantScores, `reward, batch ${batch}`);
      assert.deepEqual(await fixed.rewards[0]!.embed!(samples, batch), await inner.rewards[0]!.embed!(samples, batch), `embedding, batch ${batch}`);
    }
    assert.throws(() => fixedShapeModel(inner, 0), /positive whole number/);
  });

  it('a run with --call-rows gives the same search as without on the CPU (an ONNX bundle and the analytic model)', async () => {
    for (const input of [
      { method: 'evosearch', budgetNfe: 1500, seed: 3, callRows: 16 },
      { model: 'models/bundles/tiny-sd', prompt: 'a red circle', method: 'evosearch', budgetNfe: 400, seed: 2, callRows: 8 },
    ]) {
      const padded = plan(input);
      const { callRows: _, ...rest } = input;
      const plain = plan(rest);
      assert.equal(padded.callRows, input.callRows);
      const outcome = async (p: RunPlan) => {
        const pool = await ThreadPool.start(1, workerSetupFor(p));
        if (p.callRows !== undefined && p.model !== 'analytic:gmm') assert.match(pool.describe(0), new RegExp(`calls of ${p.callRows} rows`), 'the worker thread runs the fixed-shape model');
        try {
          const o = await runSearch(createSearch(p, createSampler(p.sampler)), new Dispatcher(pool));
          return { best: o.best, nfe: o.counters.nfe, decodes: o.counters.decodes, candidates: o.candidates.map((c) => ({ id: c.id, evaluations: c.evaluations })) };
        } finally {
          await pool.close();
        }
      };
      assert.deepEqual(await outcome(padded), await outcome(plain), `${input.model ?? 'analytic'}: same decisions, rewards and compute`);
    }
  });

  it('is refused when it is no positive whole number or off', async () => {
    assert.throws(() => plan({ callRows: 0 }), /callRows/);
    assert.throws(() => plan({ callRows: 2.5 }), /callRows/);
    assert.throws(() => plan({ callRows: 'auto' }), /callRows/);
    assert.equal(plan({ callRows: 'off' }).callRows, 'off');
    const refused = await evosearch(['run', '--call-rows', 'sixteen', '--budget-nfe', '100']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--call-rows takes an integer, got 'sixteen'/);
  });

  it('defaults to calls of CUDA_CALL_ROWS rows where the denoiser runs on CUDA, and to calls as the work comes elsewhere', () => {
    assert.equal(callRowsFor(undefined, 'cuda', 256), CUDA_CALL_ROWS);
    assert.equal(callRowsFor(undefined, 'cuda', 8), 8, 'never more rows than a call may hold (--batch-size)');
    assert.equal(callRowsFor('off', 'cuda', 256), undefined);
    assert.equal(callRowsFor(16, 'cuda', 256), 16);
    for (const provider of ['cpu', 'webgpu', undefined]) {
      assert.equal(callRowsFor(undefined, provider, 256), undefined, `${provider}: the answers and shapes stay as they were`);
      assert.equal(callRowsFor(12, provider, 256), 12, `${provider}: an explicit setting holds`);
    }
  });
});
