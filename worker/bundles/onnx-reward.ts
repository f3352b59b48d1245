/**
 * A reward model from rewards.json as a RewardModel: decoded images (and the prompt's tokens, when the
 * manifest says so) in, one score per image out.
 */
import type { RewardModel } from '../models/generator.js';
import { ModelLayoutError } from '../runtime/model-layout-error.js';
import { fixedBatch, type OnnxSession, type TensorInfo } from '../runtime/onnx-session.js';
import { floatTensor, readFloats, tokenTensor, type FloatType, type IntType } from '../runtime/tensors.js';
import type { RewardRole, OnnxRewardSpec as RewardSpec } from './reward-manifest.js';
import type { Tokenizer } from './tokenizer.js';

const FLOATS = ['float32', 'float16'] as const;

/** Gives a tokenizer producing `length` ids (null: its own length) from `folder` (null: the bundle's). */
export type TokenizerSource = (length: number | null, folder: string | null) => Promise<Tokenizer>;

interface Feed {
  readonly info: TensorInfo;
  readonly source: 'image' | 'prompt_tokens' | 'prompt_attention_mask';
  /** Token or mask row, for the text inputs. */
  readonly row: Int32Array | null;
}

export class OnnxRewardModel implements RewardModel {
  readonly name: string;
  readonly role: RewardRole;

  private constructor(
    private readonly session: OnnxSession,
    private readonly spec: RewardSpec,
    private readonly feeds: readonly Feed[],
    private readonly outputName: string,
    private readonly sampleShape: readonly number[],
    private readonly embedding: { readonly name: string; readonly size: number } | null,
  ) {
    this.name = spec.name;
    this.role = spec.role;
  }

  static async open(session: OnnxSession, spec: RewardSpec, prompt: string, sampleShape: readonly number[], tokenizers: TokenizerSource): Promise<OnnxRewardModel> {
    const file = session.file;
    for (const name of session.inputs.keys()) {
      if (!(name in spec.inputs)) throw new ModelLayoutError(file, `input '${name}'`, `an entry in rewards.json's inputs for '${spec.name}' (${Object.keys(spec.inputs).join(', ')})`, 'an input the manifest does not feed');
    }
    const feeds: Feed[] = [];
    let batchAxis: number | null | undefined;
    for (const [name, source] of Object.entries(spec.inputs)) {
      let info: TensorInfo;
      let row: Int32Array | null = null;
      if (source === 'image') {
        // No resizing on the host: the reward's graph takes the decoder's images as they are.
        // Images [batch, 3, H, W], or clips [batch, frames, 3, H, W] for video bundles.
        info = session.input(name, { types: [...FLOATS], ranks: [1 + sampleShape.length], dims: [null, ...sampleShape] });
      } else {
        info = session.input(name, { types: ['int64', 'int32'], ranks: [2] });
        const tokenizer = await tokenizers(typeof info.dims[1] === 'number' ? info.dims[1] : null, spec.tokenizer);
        if (source === 'prompt_tokens') row = tokenizer.encode(prompt);
        else {
          row = new Int32Array(tokenizer.length);
          row.fill(1, 0, tokenizer.count(prompt));
        }
      }
      const fixed = fixedBatch(info);
      if (batchAxis !== undefined && fixed !== batchAxis) throw new ModelLayoutError(file, `input '${name}'`, `the same batch axis as the other inputs (${batchAxis ?? 'symbolic'})`, `[${info.dims.join(', ')}]`);
      batchAxis = fixed;
      feeds.push({ info, source, row });
    }
    const outputName = spec.output ?? (session.outputs.size === 1 ? [...session.outputs.keys()][0]! : null);
    if (outputName === null) throw new ModelLayoutError(file, 'outputs', `one output, or rewards.json naming it in 'output'`, `outputs ${[...session.outputs.keys()].join(', ')}`);
    const out = session.output(outputName, { types: [...FLOATS, 'float64'], ranks: [1, 2] });
    if (out.rank === 2 && typeof out.dims[1] === 'number' && out.dims[1] !== 1) throw new ModelLayoutError(file, `output '${outputName}'`, 'one score per image ([batch] or [batch, 1])', `[${out.dims.join(', ')}]`);
    let embedding: { name: string; size: number } | null = null;
    if (spec.embedding !== null) {
      const info = session.output(spec.embedding, { types: [...FLOATS], ranks: [2] });
      const size = info.dims[1];
      if (typeof size !== 'number' || size <= 0) throw new ModelLayoutError(file, `output '${spec.embedding}'`, 'a fixed embedding size [batch, D]', `[${info.dims.join(', ')}]`);
      embedding = { name: spec.embedding, size };
    }
    return new OnnxRewardModel(session, spec, feeds, outputName, sampleShape, embedding);
  }

  async score(samples: Float32Array, batch: number, out: Float64Array): Promise<void> {
    await this.runChunks(samples, batch, this.outputName, (start, n, scores, dims) => {
      if (scores.length < n) throw new ModelLayoutError(this.session.file, `output '${this.outputName}'`, `${n} scores`, `[${dims.join(', ')}]`);
      for (let k = 0; k < n; k++) out[start + k] = scores[k]!;
    });
  }

  get embeddingSize(): number | undefined {
    return this.embedding?.size;
  }

  async embed(samples: Float32Array, batch: number): Promise<Float32Array> {
    const embedding = this.embedding;
    if (embedding === null) throw new ModelLayoutError(this.session.file, 'rewards.json embedding', 'an output with image embeddings', 'none named');
    const rows = new Float32Array(batch * embedding.size);
    await this.runChunks(samples, batch, embedding.name, (start, n, values, dims) => {
      if (values.length < n * embedding.size) throw new ModelLayoutError(this.session.file, `output '${embedding.name}'`, `${n} rows of ${embedding.size}`, `[${dims.join(', ')}]`);
      rows.set(values.subarray(0, n * embedding.size), start * embedding.size);
    });
    return rows;
  }

  /** Feeds `batch` samples in the graph's batch size and hands each chunk's `output` to `take`. */
  private async runChunks(samples: Float32Array, batch: number, output: string, take: (start: number, n: number, values: Float32Array, dims: readonly number[]) => void): Promise<void> {
    const per = this.sampleShape.reduce((a, b) => a * b, 1);
    const [channels, height, width] = this.sampleShape.slice(-3) as [number, number, number];
    const plane = height * width;
    const frames = per / (channels * plane);
    const fixed = fixedBatch(this.feeds[0]!.info);
    const step = fixed ?? batch;
    const { mean, std } = this.spec;
    for (let start = 0; start < batch; start += step) {
      const n = Math.min(step, batch - start);
      const feedRows = fixed ?? n;
      const inputs: Record<string, ReturnType<typeof floatTensor>> = {};
      for (const feed of this.feeds) {
        if (feed.source === 'image') {
          const images = new Float32Array(feedRows * per);
          for (let r = 0; r < feedRows; r++) {
            const row = start + Math.min(r, n - 1);
            for (let f = 0; f < frames; f++) {
              for (let c = 0; c < channels; c++) {
                const m = mean?.[c] ?? 0;
                const s = std?.[c] ?? 1;
                const offset = (f * channels + c) * plane;
                const base = row * per + offset;
                const to = r * per + offset;
                for (let i = 0; i < plane; i++) images[to + i] = (samples[base + i]! - m) / s;
              }
            }
          }
          inputs[feed.info.name] = floatTensor(feed.info.type as FloatType, images, [feedRows, ...this.sampleShape]);
        } else {
          const row = feed.row!;
          const ids = new Int32Array(feedRows * row.length);
          for (let r = 0; r < feedRows; r++) ids.set(row, r * row.length);
          inputs[feed.info.name] = tokenTensor(feed.info.type as IntType, ids, [feedRows, row.length]);
        }
      }
      const result = await this.session.run(inputs, [output]);
      take(start, n, readFloats(result[output]!, `${this.session.file} ${output}`), result[output]!.dims);
    }
  }
}
