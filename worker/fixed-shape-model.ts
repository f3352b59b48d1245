/**
 * A model whose every call runs exactly `rows` rows: larger calls are cut into calls of `rows`, and a
 * shorter one is padded with copies of its last row, whose outputs are thrown away.
 *
 * Why: on a GPU provider a call at a batch size the session has not run before costs far more than a
 * steady one (on an H200 with the CUDA provider, 0.1-0.3 s for tiny-sd's U-Net against 3-6 ms), and
 * the provider's floats for a row can change with the batch size. A search meets many batch sizes (a
 * population per round, split over workers), so a run of fixed-shape calls pays that first call once
 * per model and gives each row the same floats on any number of workers. On the CPU provider a row's
 * output does not depend on its batch, so the answers are the same with and without it.
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
