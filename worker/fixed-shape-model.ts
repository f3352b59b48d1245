/**
 * A model whose every call runs exactly `rows` rows: larger calls are cut into calls of `rows`, and a
 * shorter one is padded with copies of its last row, whose outputs are thrown away.
 *
 * Why: on a GPU provider a call at a batch size the session has not run before costs far more than a
 * steady one (on an H200 with the CUDA provider, 0.1-0.3 s for tiny-sd's U-Net against 3-6 ms), and
 * the provider's floats for a row can change with the batch size. A search meets many batch sizes (a
 * population per round, split over workers), so a run of fixed-shape calls pays that first call once
 * per model and, for the shipped bundles, gives each row the same floats on any number of workers. Not
 * for every graph: in the SD-2.1-sized U-Net in fp16 a row's floats also depend on the other rows of
 * its call, and only calls of one row were exact on 1, 2 and 4 workers
 * (bench/reports/multi-gpu/cuda-one-gpu/README.md). On the CPU provider a row's output does not depend
 * on its batch, so the answers are the same with and without it.
 *
 * NFEs and forward passes count the rows asked for; the padding rows are extra work on hardware that
 * is waiting on latency anyway, which is where this is meant to be used (`callRows` in the run config).
 */
import type { Decoder, Denoiser, GenerativeModel, RewardModel } from './models/generator.js';

type Output = Float32Array | Float64Array;

/**
 * `run` over `batch` rows of `input` (`inSize` floats each) in calls of exactly `rows` rows, the first
 * `batch` rows of the outputs (`outSize` each) into `out`.
 */
async function inFixedRows<O extends Output>(
  rows: number,
  input: Float32Array,
  batch: number,
  inSize: number,
  out: O,
  outSize: number,
  makeOut: (length: number) => O,
  run: (input: Float32Array, rows: number, out: O) => void | Promise<void>,
): Promise<void> {
  for (let start = 0; start < batch; start += rows) {
    const n = Math.min(rows, batch - start);
    if (n === rows) {
      // A full call: views, no copies.
      await run(input.subarray(start * inSize, (start + rows) * inSize), rows, out.subarray(start * outSize, (start + rows) * outSize) as O);
      continue;
    }
    const padded = new Float32Array(rows * inSize);
    padded.set(input.subarray(start * inSize, (start + n) * inSize));
    const last = padded.subarray((n - 1) * inSize, n * inSize);
    for (let r = n; r < rows; r++) padded.set(last, r * inSize);
    const paddedOut = makeOut(rows * outSize);
    await run(padded, rows, paddedOut);
    out.set(paddedOut.subarray(0, n * outSize) as never, start * outSize);
  }
}

/**
 * Rows of every model call on CUDA unless the run says otherwise. Measured on an H200 (tiny-sd, 1000
 * NFEs; bench/reports/cuda-runtime): EvoSearch took 2.37x Best-of-N's wall time with calls as the work
 * came and 0.99x with calls of 32 rows; 20,000 NFEs took 15.6 s with calls as they came, 7.2 s in
 * calls of 16, 4.1 s of 32 and 3.5 s of 64. 32 keeps the padding of a small call cheap where a model
 * is latency-bound and is within reach of a large model's batch (which --batch-size caps it to).
 */
export const CUDA_CALL_ROWS = 32;

/**
 * The rows of every model call of a worker: the run's setting, or where it gives none, CUDA_CALL_ROWS
 * (at most the batch size) when the denoiser landed on the CUDA provider; undefined means calls as the
 * work comes (the CPU and WebGPU default: there a row's floats do not depend on its batch size, and
 * no first-call cost per shape was measured).
 */
export function callRowsFor(setting: number | 'off' | undefined, denoiserProvider: string | undefined, batchSize: number): number | undefined {
  if (setting === 'off') return undefined;
  if (setting !== undefined) return setting;
  return denoiserProvider === 'cuda' ? Math.min(CUDA_CALL_ROWS, batchSize) : undefined;
}

export function fixedShapeModel(model: GenerativeModel, rows: number): GenerativeModel {
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`fixedShapeModel: rows must be a positive whole number, got ${rows}`);
  const d = model.denoiser;
  const c = model.decoder;
  const float32 = (length: number) => new Float32Array(length);
  const float64 = (length: number) => new Float64Array(length);
  const denoiser: Denoiser = {
    latentSize: d.latentSize,
    latentShape: d.latentShape,
    prediction: d.prediction,
    forwardPassesPerNfe: d.forwardPassesPerNfe,
    predict: (latents, batch, time, out) => inFixedRows(rows, latents, batch, d.latentSize, out, d.latentSize, float32, (x, n, y) => d.predict(x, n, time, y)),
  };
  const decoder: Decoder = {
    sampleSize: c.sampleSize,
    sampleShape: c.sampleShape,
    decode: (latents, batch, out) => inFixedRows(rows, latents, batch, d.latentSize, out, c.sampleSize, float32, (x, n, y) => c.decode(x, n, y)),
  };
  const rewards = model.rewards.map((r): RewardModel => {
    const embed = r.embed;
    const size = r.embeddingSize;
    return {
      ...r,
      score: (samples, batch, out) => inFixedRows(rows, samples, batch, c.sampleSize, out, 1, float64, (x, n, y) => r.score(x, n, y)),
      ...(embed !== undefined && size !== undefined
        ? {
            embed: async (samples: Float32Array, batch: number) => {
              const out = new Float32Array(batch * size);
              await inFixedRows(rows, samples, batch, c.sampleSize, out, size, float32, async (x, n, y) => y.set(await embed.call(r, x, n)));
              return out;
            },
          }
        : {}),
    };
  });
  return {
    ...model,
    id: model.id,
    ...(model.describe ? { describe: () => `${model.describe!()}, calls of ${rows} rows` } : {}),
    denoiser,
    decoder,
    rewards,
  };
}
