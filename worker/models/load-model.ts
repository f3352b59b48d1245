import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { PredictionType } from '../../samplers/sampler.js';
import type { OnnxGenerativeModel, OnnxModelOptions } from '../bundles/onnx-generative-model.js';
import { createAnalyticModel } from './analytic-gmm.js';
import { parseAnalyticModelSpec } from './analytic-gmm-config.js';
import type { GenerativeModel } from './generator.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

/** A model spec that names nothing loadable, or a model that does not fit the run's sampler. */
export class ModelLoadError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'ModelLoadError';
  constructor(readonly spec: string, detail: string, options?: { cause?: unknown }) {
    super(`model '${spec}': ${detail}`, options);
  }
}

/** The bundle options a model spec passes through to OnnxGenerativeModel.load (documented there); the analytic model ignores them. */
type BundleLoadOptions = Pick<OnnxModelOptions, 'negativePrompt' | 'guidanceScale' | 'providers' | 'cuda' | 'rewards' | 'modelRoots' | 'intraOpThreads' | 'height' | 'width' | 'remoteRewards'>;

export interface LoadOptions extends BundleLoadOptions {
  /** What the run's sampler expects the network to predict. */
  readonly prediction: PredictionType;
  /** The prompt a bundle is conditioned on (required for bundles; the analytic model has none). */
  readonly prompt?: string;
}

/** Whether `spec` names a bundle folder: `bundle:<path>`, a path-like spec, or an existing folder. */
export function bundlePath(spec: string): string | null {
  if (spec.startsWith('bundle:')) return spec.slice('bundle:'.length);
  if (spec.startsWith('analytic:')) return null;
  if (isAbsolute(spec) || spec.startsWith('./') || spec.startsWith('../') || spec.includes('/')) return spec;
  try {
    return statSync(spec).isDirectory() ? spec : null;
  } catch {
    return null;
  }
}

/**
 * Loads a model synchronously: `analytic:gmm[?...]`, the closed-form model, whose parameterisation
 * follows the sampler unless the spec sets one, in which case the two must agree. Bundles open ONNX
 * sessions, which is asynchronous: use openModel for any spec (worker threads do).
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
  if (bundlePath(spec) !== null) throw new ModelLoadError(spec, 'is a model bundle, which loads asynchronously: call openModel');
  throw unknownModel(spec);
}

function unknownModel(spec: string): ModelLoadError {
  return new ModelLoadError(spec, 'unknown model; this build loads `analytic:gmm[?key=value&...]` and ONNX bundle folders (a path, or `bundle:<path>`)');
}

/**
 * Loads the model any spec names. A folder (or `bundle:<folder>`) is an ONNX bundle in optimum's
 * layout, conditioned on `options.prompt`; its scheduler's prediction type must be the sampler's.
 */
export async function openModel(spec: string, options: LoadOptions): Promise<GenerativeModel> {
  const folder = bundlePath(spec);
  if (folder === null) return loadModel(spec, options);
  if (options.prompt === undefined) throw new ModelLoadError(spec, 'a model bundle needs a prompt (the text it is conditioned on)');
  let model: OnnxGenerativeModel;
  try {
    // Imported here so analytic runs never load the native onnxruntime binding.
    const { OnnxGenerativeModel } = await import('../bundles/onnx-generative-model.js');
    model = await OnnxGenerativeModel.load(folder, {
      prompt: options.prompt,
      ...(options.negativePrompt !== undefined ? { negativePrompt: options.negativePrompt } : {}),
      ...(options.guidanceScale !== undefined ? { guidanceScale: options.guidanceScale } : {}),
      ...(options.providers !== undefined ? { providers: options.providers } : {}),
      ...(options.cuda !== undefined ? { cuda: options.cuda } : {}),
      ...(options.rewards !== undefined ? { rewards: options.rewards } : {}),
      ...(options.modelRoots !== undefined ? { modelRoots: options.modelRoots } : {}),
      ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}),
      ...(options.remoteRewards ? { remoteRewards: true } : {}),
      ...(options.height !== undefined ? { height: options.height } : {}),
      ...(options.width !== undefined ? { width: options.width } : {}),
    });
  } catch (error) {
    throw new ModelLoadError(spec, error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (model.denoiser.prediction !== options.prediction) {
    await model.release();
    throw new ModelLoadError(spec, `predicts '${model.denoiser.prediction}' (scheduler/scheduler_config.json) but the sampler expects '${options.prediction}'; take the sampler from the bundle (bundleSamplerConfig)`);
  }
  return model;
}
