import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { WorkerCommandError } from '../proto/worker-pool.js';
import { runSearchToFolder } from '../coordinator/run/run-search-to-folder.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { winnerLineage } from '../coordinator/run/prompt-report.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { ThreadPool } from '../worker/thread-pool.js';
import { parseRunConfig, resolveRunConfig, type RunPlan } from '../config/resolve-run-config.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor, NonFiniteValueError } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';
import type { GenerativeModel } from '../worker/models/generator.js';

const silent = pino({ level: 'silent' });

function plan(input: Record<string, unknown>): RunPlan {
  return resolveRunConfig(parseRunConfig(input, 'test'), 'test');
}

function inProcess(p: RunPlan, workers: number, batchSize = p.batchSize, wrap?: (m: GenerativeModel) => GenerativeModel) {
  const sampler = createSampler(p.sampler);
  return new InProcessPool(
    Array.from({ length: workers }, () => {
      const model = loadModel(p.model, { prediction: sampler.prediction });
      return new CommandExecutor(wrap ? wrap(model) : model, sampler, BigInt(p.seed), { batchSize });
    }),
  );
}

async function search(p: RunPlan, pool: InProcessPool | ThreadPool) {
  return runSearch(createSearch(p, createSampler(p.sampler)), new Dispatcher(pool));
}

/** What must not depend on placement or batching: every candidate's lineage and evaluations. */
function fingerprint(outcome: Awaited<ReturnType<typeof search>>) {
  return { best: outcome.best, nfe: outcome.counters.nfe, candidates: outcome.candidates.map((c) => ({ id: c.id, parents: c.parents, origin: c.origin, evaluations: c.evaluations })) };
}

describe('embedded engine', () => {
  for (const method of ['evosearch', 'best-of-n', 'particles'] as const) {
    it(`${method}: the same seed gives the same search on 1 or 3 workers and at any batch size`, async () => {
      const p = plan({ method, budgetNfe: 2000, seed: 5 });
      const one = fingerprint(await search(p, inProcess(p, 1, 256)));
      const three = fingerprint(await search(p, inProcess(p, 3, 7)));
      assert.deepEqual(three, one);
      assert.equal(one.nfe, p.planned[method].nfe);
    });
  }

  it('worker threads give the same search as in-process workers', async () => {
    const p = plan({ method: 'evosearch', budgetNfe: 1500, seed: 9, preset: 'flux' });
    const threads = await ThreadPool.start(2, workerSetupFor(p));
    try {
      assert.deepEqual(fingerprint(await search(p, threads)), fingerprint(await search(p, inProcess(p, 1))));
    } finally {
      await threads.close();
    }
  });

  it('writes a run folder: record with every candidate and the compute spent, config, best sample, log', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'evosearch-run-'));
    const p = plan({ method: 'evosearch', seed: 1, workers: 2 });
    const { record, paths } = await runSearchToFolder(p, { folder, logger: silent });
    const saved = JSON.parse(await readFile(paths.record, 'utf8'));
    assert.equal(saved.spent.nfe, 5000);
    assert.equal(saved.plan.method, 'evosearch');
    assert.equal(saved.candidates.length, record.candidates.length);
    assert.ok(saved.candidates.every((c: { parents: unknown[]; origin: { op: string } }) => Array.isArray(c.parents) && typeof c.origin.op === 'string'));
    // One round per generation, the final one, and possibly one freeing an overtaken sample.
    assert.ok(saved.rounds.length === 5 || saved.rounds.length === 6, `${saved.rounds.length} rounds`);
    assert.deepEqual(saved.workers.length, 2);
    const best = JSON.parse(await readFile(paths.bestSample, 'utf8'));
    assert.equal(best.reward, saved.best.reward);
    assert.equal(best.data.length, 8);
    assert.ok(Number.isFinite(saved.best.metrics['rare-mode-hit']));
    const config = JSON.parse(await readFile(paths.config, 'utf8'));
    assert.deepEqual(config.evosearch.populationSchedule, [42, 26, 26, 26, 30]);
  });

  it('collects outputs without changing the search: best and final samples, thumbnails of every evaluation', async () => {
    const p = plan({ method: 'evosearch', budgetNfe: 2000, seed: 5 });
    const sampler = createSampler(p.sampler);
    const bare = await search(p, inProcess(p, 2));
    const outcome = await runSearch(createSearch(p, sampler), new Dispatcher(inProcess(p, 2)), { thumbnails: 16, population: 10 });
    assert.deepEqual(fingerprint(outcome), fingerprint(bare));
    assert.equal(outcome.population.length, 10);
    const rewards = outcome.population.map((s) => outcome.candidates[s.id]!.reward!);
    assert.deepEqual(rewards, [...rewards].sort((a, b) => b - a), 'population best first');
    // Every rollout and every final sample left a thumbnail under its own node.
    const scoredNodes = outcome.candidates.filter((c) => c.origin.op === 'rollout-final' || c.scoredBy === 'final');
    assert.ok(scoredNodes.every((c) => outcome.thumbnails.has(c.id)), 'a thumbnail per evaluation');
    const bestThumb = outcome.thumbnails.get(outcome.best!.sampleId)!.at(-1)!;
    assert.deepEqual(Array.from(bestThumb.data), Array.from(outcome.bestSample!.data));
    // The winner's lineage starts at an x_T and contains the winning sample.
    const lineage = winnerLineage(outcome);
    assert.equal(lineage[0]!.op, 'init');
    assert.ok(lineage.some((s) => s.id === outcome.best!.sampleId && s.reward === outcome.best!.reward));
  });

  it('a NaN from the model stops the run with the candidate and step named', async () => {
    const p = plan({ method: 'evosearch', budgetNfe: 1000, seed: 2 });
    const poisoned = (model: GenerativeModel): GenerativeModel => ({
      ...model,
      denoiser: {
        ...model.denoiser,
        latentSize: model.denoiser.latentSize,
        latentShape: model.denoiser.latentShape,
        prediction: model.denoiser.prediction,
        forwardPassesPerNfe: 1,
        predict(latents, batch, time, out) {
          model.denoiser.predict(latents, batch, time, out);
          if (time.noiseScale < 0.5) out[0] = Number.NaN;
        },
      },
    });
    await assert.rejects(search(p, inProcess(p, 1, 256, poisoned)), (error: unknown) => error instanceof NonFiniteValueError && /model output of candidate \d+ at step \d+ is not finite/.test(error.message));
  });

  it('a NaN reward is refused, naming the reward model', async () => {
    const p = plan({ method: 'best-of-n', budgetNfe: 500, seed: 2 });
    const broken = (model: GenerativeModel): GenerativeModel => ({
      ...model,
      rewards: [{ name: 'broken', score: (_s, batch, out) => void out.fill(Number.NaN, 0, batch) }],
    });
    await assert.rejects(search(p, inProcess(p, 1, 256, broken)), /reward 'broken' of candidate 0/);
  });

  it('a worker thread that cannot load its model fails the start with the cause', async () => {
    const p = plan({ method: 'best-of-n', budgetNfe: 500 });
    await assert.rejects(ThreadPool.start(2, { ...workerSetupFor(p), model: 'analytic:gmm?modes=0' }), (error: unknown) => error instanceof WorkerCommandError && /failed to start.*modes/.test(error.message));
    await assert.rejects(ThreadPool.start(1, { ...workerSetupFor(p), model: 'onnx:nowhere' }), /unknown model/);
  });

  it('a command error on a worker thread rejects the round with the worker named', async () => {
    const p = plan({ method: 'best-of-n', budgetNfe: 500 });
    const pool = await ThreadPool.start(1, workerSetupFor(p));
    try {
      await assert.rejects(pool.execute(0, [{ kind: 'advance', ids: [123], from: 0, to: 1, purpose: 'advance' }]), /worker #0 .*no state for candidate 123/);
      // The worker survives a bad command.
      const [result] = await pool.execute(0, [{ kind: 'init', ids: [1] }]);
      assert.equal(result!.kind, 'init');
    } finally {
      await pool.close();
    }
  });

  it('the analytic model refuses a prediction type that contradicts the sampler', () => {
    assert.throws(() => loadModel('analytic:gmm?prediction=flow', { prediction: 'epsilon' }), /predicts 'flow' but the sampler expects 'epsilon'/);
  });
});
