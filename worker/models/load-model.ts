import type { PredictionType } from '../../samplers/sampler.js';
import { createAnalyticModel } from './analytic-gmm.js';
import { parseAnalyticModelSpec } from './analytic-gmm-config.js';
import type { GenerativeModel } from './generator.js';

/** A model spec that names nothing loadable, or a model that does not fit the run's sampler. */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
  constructor(readonly spec: string, detail: string, options?: { cause?: unknown }) {
    super(`model '${spec}': ${detail}`, options);
  }
}

export interface LoadOptions {
  /** What the run's sampler expects the network to predict. */
  readonly prediction: PredictionType;
}

/**
 * Loads the model a spec names. `analytic:gmm[?...]` is the closed-form model; its parameterisation
 * follows the sampler unless the spec sets one, in which case the two must agree.
 */
export function loadModel(spec: string, options: LoadOptions): GenerativeModel {
  if (spec.startsWith('analytic:')) {
    const config = parseAnalyticModelSpec(spec);
    const explicit = new URLSearchParams(spec.includes('?') ? spec.slice(spec.indexOf('?') + 1) : '').has('prediction');
    if (explicit && config.prediction !== options.prediction) {
      throw new ModelLoadError(spec, `predicts '${config.prediction}' but the sampler expects '${options.prediction}'; drop prediction= from the spec or change the sampler`);
    }
    return createAnalyticModel({ ...config, prediction: options.prediction });
  }
  throw new ModelLoadError(spec, 'unknown model; this build loads `analytic:gmm[?key=value&...]` (ONNX bundles come with the model runtime)');
}
