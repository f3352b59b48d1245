/**
 * The x0 prediction of VP samplers from the network output, shared by DDIM and DDPM (step 3 and 4 of
 * DDIMScheduler.step / DDPMScheduler.step):
 *
 *   epsilon:      x0 = (x - sqrt(1 - a) * eps) / sqrt(a)
 *   v_prediction: x0 = sqrt(a) * x - sqrt(1 - a) * v
 *
 * then clamped to [-clip_sample_range, clip_sample_range] when clip_sample is on.
 */
import type { VpPredictionType } from './sampler-config.js';

/** Writes x0 for every element; `clip` is the clamp range or null. `out` may alias `sample` or `modelOutput`. */
export function vpPredictX0(
  prediction: VpPredictionType,
  alphaProd: number,
  clip: number | null,
  sample: Float32Array,
  modelOutput: Float32Array,
  out: Float32Array,
): void {
  const sqrtA = Math.sqrt(alphaProd);
  const sqrtB = Math.sqrt(1 - alphaProd);
  const n = sample.length;
  const lo = clip === null ? -Infinity : -clip;
  const hi = clip === null ? Infinity : clip;
  if (prediction === 'epsilon') {
    for (let k = 0; k < n; k++) {
      const x0 = (sample[k] - sqrtB * modelOutput[k]) / sqrtA;
      out[k] = x0 < lo ? lo : x0 > hi ? hi : x0;
    }
  } else {
    for (let k = 0; k < n; k++) {
      const x0 = sqrtA * sample[k] - sqrtB * modelOutput[k];
      out[k] = x0 < lo ? lo : x0 > hi ? hi : x0;
    }
  }
}
