/**
 * Misuse of a built sampler at step time: an index outside 0..N-1, a missing noise tensor for a stochastic
 * step, or tensors of different lengths. These are programming errors in the caller; failing loudly keeps
 * a silently wrong latent (a NaN, a skipped noise draw) from entering the search.
 */
export class SamplerStepError extends RangeError {
  override readonly name = 'SamplerStepError';
}

/** Throws unless `index` is an integer in [0, limit). `what` names the method for the message. */
export function checkStepIndex(what: string, index: number, limit: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= limit) {
    throw new SamplerStepError(`${what}: index must be an integer in [0, ${limit}), got ${String(index)}`);
  }
}

/** Throws unless every named tensor has the sample's length. */
export function checkLengths(what: string, sample: Float32Array, tensors: Readonly<Record<string, Float32Array | null>>): void {
  for (const [name, tensor] of Object.entries(tensors)) {
    if (tensor !== null && tensor.length !== sample.length) {
      throw new SamplerStepError(`${what}: ${name} has ${tensor.length} elements but sample has ${sample.length}`);
    }
  }
}

/** Returns `noise`, or throws if it is null (a stochastic step needs the caller's standard normal). */
export function requireNoise(what: string, index: number, noise: Float32Array | null): Float32Array {
  if (noise === null) {
    throw new SamplerStepError(`${what}: step ${index} is stochastic and needs a noise tensor (got null)`);
  }
  return noise;
}
