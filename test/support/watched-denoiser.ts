import type { Denoiser, GenerativeModel } from '../../worker/models/generator.js';

/**
 * `model` with every denoiser call passed to `watch` first (the real model does the work): for tests
 * that count calls, record batch sizes or make the model fail (or wait) on demand.
 */
export function watchDenoiser(model: GenerativeModel, watch: (batch: number) => void | Promise<void>): GenerativeModel {
  const d = model.denoiser;
  const denoiser: Denoiser = {
    latentSize: d.latentSize,
    latentShape: d.latentShape,
    prediction: d.prediction,
    forwardPassesPerNfe: d.forwardPassesPerNfe,
    predict: async (latents, batch, time, out) => {
      await watch(batch);
      return d.predict(latents, batch, time, out);
    },
  };
  return { ...model, id: model.id, denoiser, decoder: model.decoder, rewards: model.rewards };
}
