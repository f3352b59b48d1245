/**
 * The worker's model runtime on one execution provider (on the GPU machine: WebGPU on the H200), two
 * ways:
 *
 * - `--graph name=path`: one ONNX graph alone (the SD-2.1-sized U-Net stand-in of
 *   models/scripts/sd21_unet_standin.py), random inputs built from its declared inputs. Reports latents per
 *   second per batch size, and the share of each call spent outside session.run (making the input
 *   tensors, reading the output).
 * - `--bundle path`: a model bundle through the worker runtime itself: a CommandExecutor runs `init`
 *   and one `advance` over every denoising step for a batch of states. NFEs per second, and the
 *   share of the wall time outside session.run (scheduler math, noise, copies, tensor transfer).
 *   `--noise-ahead` (the default) draws the sampler noise on a helper thread while the model runs
 *   (ExecutorOptions.noiseAhead); `--no-noise-ahead` draws it in the step loop, after each call.
 *
 *   npm run build && node dist/bench/gpu-runtime.js [--bundle models/bundles/tiny-sd ...] [--graph sd21-fp32=/tmp/sd21/fp32/model.onnx ...]
 *       [--batches 1,2,4,8,16,32,64] [--graph-batches 1,2,4,8] [--providers webgpu] [--repeats 3] [--results out.jsonl]
 *       [--no-noise-ahead]
 *
 * Prints a markdown table; each measurement is also one JSON line in --results.
 */
import { readFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { planRun } from '../config/plan-run.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { openModel } from '../worker/models/load-model.js';
import { OnnxSession } from '../worker/runtime/onnx-session.js';
import { isProviderName, type ProviderName } from '../worker/runtime/providers.js';

const { values } = parseArgs({
  options: {
    bundle: { type: 'string', multiple: true, default: [] },
    graph: { type: 'string', multiple: true, default: [] },
    batches: { type: 'string', default: '1,4,16,64' },
    'graph-batches': { type: 'string', default: '1,2,4,8' },
    providers: { type: 'string', default: 'webgpu' },
    repeats: { type: 'string', default: '3' },
    results: { type: 'string' },
    'noise-ahead': { type: 'boolean', default: true },
    'no-noise-ahead': { type: 'boolean', default: false },
  },
});
const noiseAhead = values['noise-ahead'] && !values['no-noise-ahead'];
const provider = values.providers as ProviderName;
if (!isProviderName(provider)) throw new Error(`gpu-runtime: unknown provider '${values.providers}'`);
const repeats = Number(values.repeats);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];

async function record(line: Record<string, unknown>): Promise<void> {
  if (values.results) await appendFile(values.results, `${JSON.stringify({ ...line, provider, date: new Date().toISOString() })}\n`);
}

/** Deterministic pseudo-random floats in [-1, 1). */
function randomFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

async function benchGraph(name: string, file: string): Promise<void> {
  const opened = performance.now();
  const session = await OnnxSession.open(file, { providers: [provider] });
  const openMs = performance.now() - opened;
  for (const batch of values['graph-batches'].split(',').map(Number)) {
    const data = new Map<string, { data: Float32Array; dims: number[] }>();
    for (const [index, input] of session.inputNames().entries()) {
      const dims = session.input(input).dims.map((d) => (typeof d === 'number' && d > 0 ? d : batch));
      const size = dims.reduce((a, b) => a * b, 1);
      data.set(input, { data: input === 'timestep' ? new Float32Array(size).fill(500) : randomFloats(size, index + 1), dims });
    }
    const call = async () => {
      const started = performance.now();
      const feeds = Object.fromEntries([...data].map(([input, { data: d, dims }]) => [input, new ort.Tensor('float32', d, dims)]));
      const before = OnnxSession.runMsOnThisThread();
      const out = Object.values(await session.run(feeds))[0]!;
      const output = out.data as Float32Array;
      let finite = true;
      for (let i = 0; i < output.length; i += 97) finite &&= Number.isFinite(output[i]!);
      return { wall: performance.now() - started, run: OnnxSession.runMsOnThisThread() - before, finite };
    };
    try {
      await call(); // first call: kernels compiled, buffers allocated
      const calls = [];
      for (let r = 0; r < repeats; r++) calls.push(await call());
      const wall = median(calls.map((c) => c.wall));
      const outside = 1 - calls.reduce((a, c) => a + c.run, 0) / calls.reduce((a, c) => a + c.wall, 0);
      rows.push(`| ${name} | graph | ${batch} | ${wall.toFixed(1)} | ${(batch / (wall / 1000)).toFixed(1)} | ${(100 * outside).toFixed(1)} | ${calls.every((c) => c.finite) ? 'yes' : 'NO'} | ${openMs.toFixed(0)} |`);
      await record({ kind: 'graph', name, batch, msPerCall: wall, latentsPerSecond: batch / (wall / 1000), outsideRunShare: outside, finite: calls.every((c) => c.finite), openMs });
    } catch (error) {
      rows.push(`| ${name} | graph | ${batch} | failed: ${String((error as Error).message).split('\n')[0]!.slice(0, 120)} | | | | |`);
      await record({ kind: 'graph', name, batch, error: String((error as Error).message).slice(0, 500) });
    }
    process.stderr.write(`${rows.at(-1)}\n`);
  }
  await session.release();
}

async function benchBundle(folder: string): Promise<void> {
  const name = basename(folder);
  const family = (JSON.parse(readFileSync(join(folder, 'model_index.json'), 'utf8')) as { _evosearch?: { family?: string } })._evosearch?.family;
  const prompt = family === 'video' ? 'a blue square and a green triangle moving up' : 'two red circles left of a blue square';
  const plan = await planRun({ model: resolve(folder), prompt, seed: 1 }, 'benchmark');
  const sampler = createSampler(plan.sampler);
  const opened = performance.now();
  const model = await openModel(plan.model, { prediction: sampler.prediction, prompt: plan.prompt!, guidanceScale: plan.guidanceScale, providers: [provider] });
  const openMs = performance.now() - opened;
  const steps = sampler.steps;
  for (const batch of values.batches.split(',').map(Number)) {
    // One executor for all repeats, each on its own lineages: a noise helper thread starts once, in the warm-up.
    const executor = new CommandExecutor(model, sampler, 1n, { batchSize: batch, noiseAhead });
    const trajectory = async (r: number) => {
      const ids = Array.from({ length: batch }, (_, i) => r * batch + i);
      const started = performance.now();
      const before = OnnxSession.runMsOnThisThread();
      await executor.execute({ kind: 'init', ids });
      const result = await executor.execute({ kind: 'advance', ids, from: 0, to: steps, purpose: 'advance' });
      const measured = { wall: performance.now() - started, run: OnnxSession.runMsOnThisThread() - before, nfe: result.counters.nfe };
      await executor.execute({ kind: 'drop', ids });
      return measured;
    };
    await trajectory(0);
    const runs = [];
    for (let r = 0; r < repeats; r++) runs.push(await trajectory(r + 1));
    await executor.close();
    const wall = median(runs.map((x) => x.wall));
    const outside = 1 - runs.reduce((a, x) => a + x.run, 0) / runs.reduce((a, x) => a + x.wall, 0);
    const nfePerSecond = runs[0]!.nfe / (wall / 1000);
    const outsideMsPerStep = runs.reduce((a, x) => a + x.wall - x.run, 0) / runs.length / steps;
    rows.push(`| ${name} | worker runtime, ${steps} steps${noiseAhead ? ', noise ahead' : ''} | ${batch} | ${(wall / steps).toFixed(1)} per step | ${nfePerSecond.toFixed(0)} NFE/s | ${(100 * outside).toFixed(1)} (${outsideMsPerStep.toFixed(2)} ms a step) | – | ${openMs.toFixed(0)} |`);
    await record({ kind: 'bundle', noiseAhead, outsideMsPerStep, name, folder, batch, steps, msPerStep: wall / steps, nfePerSecond, outsideRunShare: outside, openMs, describe: model.describe?.() });
    process.stderr.write(`${rows.at(-1)}\n`);
  }
}

for (const spec of values.graph) {
  const at = spec.indexOf('=');
  await benchGraph(at < 0 ? basename(spec) : spec.slice(0, at), at < 0 ? spec : spec.slice(at + 1));
}
for (const folder of values.bundle) await benchBundle(folder);

console.log(`gpu-runtime: provider ${provider}, median of ${repeats} after one warm-up call, ${new Date().toISOString()}`);
console.log('');
console.log('| model | what | batch | ms per call | throughput (latents/s or NFE/s) | % of wall outside session.run | output finite | session open ms |');
console.log('|---|---|---|---|---|---|---|---|');
console.log(rows.join('\n'));
