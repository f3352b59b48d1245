/**
 * Shared pieces of the flow-matching samplers: the StepTime of a sigma (x = (1 - sigma) x0 + sigma eps)
 * and the x0 prediction from a velocity (v = eps - x0, so x0 = x - sigma v).
 */
import type { StepTime } from './sampler.js';

export function flowTime(timestep: number, sigma: number): StepTime {
  return Object.freeze({ timestep, signalScale: 1 - sigma, noiseScale: sigma });
}

/** x0 = x - sigma * v per element; `out` may alias either input. */
export function flowPredictX0(sigma: number, sample: Float32Array, velocity: Float32Array, out: Float32Array): void {
  const n = sample.length;
  for (let k = 0; k < n; k++) out[k] = sample[k] - sigma * velocity[k];
}
