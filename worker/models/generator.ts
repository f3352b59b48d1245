import type { PredictionType, StepTime } from '../../samplers/sampler.js';

/**
 * What a worker needs from a generative model: a denoiser over a batch of flat latents, a decoder
 * from latents to samples, and reward models over decoded samples. The analytic model implements it in
 * closed form; ONNX bundles implement it with onnxruntime sessions.
 */
export interface Denoiser {
  /** Number of floats in one latent. */
  readonly latentSize: number;
  /** Shape of one latent (without the batch axis). */
  readonly latentShape: readonly number[];
  readonly prediction: PredictionType;
  /**
   * Model output for `batch` latents laid out back to back in `latents`, all at the same step time,
   * written to `out` (same layout). One call is `batch` NFEs; `forwardPasses` says how many network
   * passes it costs per latent (2 with classifier-free guidance, 1 otherwise).
   */
  predict(latents: Float32Array, batch: number, time: StepTime, out: Float32Array): void | Promise<void>;
  readonly forwardPassesPerNfe: number;
}

export interface Decoder {
  /** Floats in one decoded sample. */
  readonly sampleSize: number;
  readonly sampleShape: readonly number[];
  decode(latents: Float32Array, batch: number, out: Float32Array): void | Promise<void>;
}

export interface RewardModel {
  readonly name: string;
  /** One score per sample, higher is better. */
  score(samples: Float32Array, batch: number, out: Float64Array): void | Promise<void>;
  /** Length of `embed`'s rows; absent when the reward model has no embedding. */
  readonly embeddingSize?: number;
  /** One embedding per sample, rows of `embeddingSize` (e.g. a CLIP-style image tower's output). */
  embed?(samples: Float32Array, batch: number): Promise<Float32Array>;
}

/** A loaded model: the pieces a worker runs. `rewards[0]` is the guidance reward. */
export interface GenerativeModel {
  readonly id: string;
  /** Where it runs, for logs and records: e.g. which execution provider opened each part. */
  describe?(): string;
  readonly denoiser: Denoiser;
  readonly decoder: Decoder;
  readonly rewards: readonly RewardModel[];
}
