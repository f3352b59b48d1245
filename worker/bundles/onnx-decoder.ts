/**
 * The bundle's VAE decoder as a Decoder: latents are unscaled (x / scaling_factor + shift_factor) before
 * the graph, since optimum keeps that outside it, and images are mapped from [-1, 1] to [0, 1] and
 * clamped after, as diffusers' pipelines do. Samples come out as [3, H, W] floats in [0, 1].
 */
import type { Decoder } from '../models/generator.js';
import { ModelLayoutError } from '../runtime/model-layout-error.js';
import { fixedBatch, type OnnxSession, type TensorInfo } from '../runtime/onnx-session.js';
import { floatTensor, readFloats, type FloatType } from '../runtime/tensors.js';

const FLOATS = ['float32', 'float16'] as const;

export class OnnxDecoder implements Decoder {
  readonly sampleSize: number;
  readonly sampleShape: readonly number[];

  private constructor(
    private readonly session: OnnxSession,
    private readonly input: TensorInfo,
    private readonly outputName: string,
    private readonly latentShape: readonly number[],
    private readonly scalingFactor: number,
    private readonly shiftFactor: number,
    sampleShape: readonly number[],
  ) {
    this.sampleShape = sampleShape;
    this.sampleSize = sampleShape.reduce((a, b) => a * b, 1);
  }

  /**
   * Checks the graph and decodes one zero latent to learn the sample shape: optimum exports leave
   * height and width symbolic, and the executor needs the size before the first decode.
   */
  static async open(session: OnnxSession, latentShape: readonly number[], scalingFactor: number, shiftFactor: number): Promise<OnnxDecoder> {
    const name = session.inputs.has('latent_sample') ? 'latent_sample' : session.inputs.has('latent') ? 'latent' : null;
    if (name === null || session.inputs.size !== 1) {
      throw new ModelLayoutError(session.file, "input 'latent_sample'", "one input named 'latent_sample'", `inputs ${[...session.inputs.keys()].map((n) => `'${n}'`).join(', ')}`);
    }
    // A video latent [frames, C, H, W] decodes frame by frame through the image decoder.
    const input = session.input(name, { types: [...FLOATS], ranks: [4], dims: [null, ...latentShape.slice(-3)] });
    const outputName = session.outputs.has('sample') ? 'sample' : session.outputs.size === 1 ? [...session.outputs.keys()][0]! : 'sample';
    session.output(outputName, { types: [...FLOATS], ranks: [4] });
    const probe = new OnnxDecoder(session, input, outputName, latentShape, scalingFactor, shiftFactor, [0]);
    const dims = await probe.run(new Float32Array(probe.latentSize), 1, null);
    if (dims[1] !== 3 && dims[1] !== 1) throw new ModelLayoutError(session.file, `output '${outputName}'`, 'images with 3 (or 1) channels', `[${dims.join(', ')}]`);
    const frames = latentShape.length === 4 ? [latentShape[0]!] : [];
    return new OnnxDecoder(session, input, outputName, latentShape, scalingFactor, shiftFactor, [...frames, ...dims.slice(1)]);
  }

  private get latentSize(): number {
    return this.latentShape.reduce((a, b) => a * b, 1);
  }

  async decode(latents: Float32Array, batch: number, out: Float32Array): Promise<void> {
    await this.run(latents, batch, out);
  }

  /** Decodes `batch` latents into `out` (null: only learn the output dims). Returns the dims of one call. */
  private async run(latents: Float32Array, latentBatch: number, out: Float32Array | null): Promise<number[]> {
    // Frames of a video latent are rows of the image decoder.
    const frames = this.latentShape.length === 4 ? this.latentShape[0]! : 1;
    const batch = latentBatch * frames;
    const size = this.latentSize / frames;
    const fixed = fixedBatch(this.input);
    const step = fixed ?? batch;
    let dims: number[] = [];
    for (let start = 0; start < batch; start += step) {
      const n = Math.min(step, batch - start);
      const feedRows = fixed ?? n;
      const x = new Float32Array(feedRows * size);
      for (let r = 0; r < feedRows; r++) {
        const row = start + Math.min(r, n - 1);
        for (let i = 0; i < size; i++) x[r * size + i] = latents[row * size + i]! / this.scalingFactor + this.shiftFactor;
      }
      const result = await this.session.run({ [this.input.name]: floatTensor(this.input.type as FloatType, x, [feedRows, ...this.latentShape.slice(-3)]) }, [this.outputName]);
      const tensor = result[this.outputName]!;
      dims = [...tensor.dims];
      if (out === null) return dims;
      const per = this.sampleSize / frames;
      const values = readFloats(tensor, `${this.session.file} ${this.outputName}`);
      if (values.length < n * per) throw new ModelLayoutError(this.session.file, `output '${this.outputName}'`, `${n} x [${this.sampleShape.join(', ')}]`, `[${dims.join(', ')}]`);
      for (let i = 0; i < n * per; i++) {
        const v = values[i]! / 2 + 0.5;
        // NaN passes through (v < 0 and v > 1 are both false) so the executor reports it instead of hiding it.
        out[start * per + i] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    }
    return dims;
  }
}
