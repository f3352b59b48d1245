/**
 * The bundle's U-Net (or transformer) as a Denoiser for ONE prompt: the prompt and negative prompt are
 * embedded at load; each call runs the graph on [uncond; cond] rows together (diffusers' ONNX pipeline
 * recipe) and combines uncond + w (cond - uncond). With w <= 1 there is no guidance and only the
 * conditional rows run (diffusers: do_classifier_free_guidance = guidance_scale > 1).
 *
 * A call is host work around session.run, which on a GPU is a large share of a step: so the prompt
 * embeddings, the same at every step, become tensors once per chunk layout; the latent input tensor
 * is refilled rather than made anew; and the two halves are combined straight from the output.
 */
import * as ort from 'onnxruntime-node';
import type { PredictionType, StepTime } from '../../samplers/sampler.js';
import type { Denoiser } from '../models/generator.js';
import { ModelLayoutError } from '../runtime/model-layout-error.js';
import { fixedBatch, type OnnxSession } from '../runtime/onnx-session.js';
import { float32ToFloat16, floatTensor, readFloats, timestepTensor, type FloatType, type TimestepLayout } from '../runtime/tensors.js';
import type { PromptEmbedding } from './onnx-text-encoder.js';

const FLOATS = ['float32', 'float16'] as const;
const LATENT_INPUTS = ['sample', 'hidden_states'];
const TIMESTEP_INPUTS = ['timestep', 'timesteps', 't'];
const POOLED_INPUTS = ['pooled_projections', 'text_embeds'];
/** Bytes of prompt-embedding tensors kept between calls (an SD-2.1 U-Net's batch of 64 with CFG takes 40 MB). */
const CONTEXT_CACHE_BYTES = 128 * 2 ** 20;
/**
 * Latent input buffers kept between calls: a chunked call alternates two row counts, and calls that
 * overlap (several executors on one model) each need their own.
 */
const SPARE_SAMPLES = 3;

/** A latent input tensor over a buffer that each call refills. */
interface SampleFeed {
  readonly rows: number;
  readonly values: Float32Array<ArrayBuffer>;
  /** The float16 bits the tensor holds, for a float16 graph; null when it holds `values` itself. */
  readonly half: Uint16Array<ArrayBuffer> | null;
  readonly tensor: ort.Tensor;
}

/** The prompt-embedding inputs of one chunk layout: the same at every step. */
interface ContextFeed {
  readonly context: ort.Tensor;
  readonly pooled: ort.Tensor | null;
  readonly bytes: number;
}

export interface DenoiserSetup {
  readonly session: OnnxSession;
  readonly prediction: PredictionType;
  readonly cond: PromptEmbedding;
  readonly uncond: PromptEmbedding;
  readonly guidanceScale: number;
  /** [channels, height, width] (video: [frames, channels, height, width]) of one latent. */
  readonly latentShape: readonly number[];
  /** The graph's timestep = StepTime.timestep * timestepScale (1 for SD/SD3; 1/1000 for graphs fed sigma). */
  readonly timestepScale: number;
  /** Rows per graph call when the batch axis is symbolic (memory bound); all rows at once when absent. */
  readonly maxRows?: number;
}

/** The graph's latent input and the rest of its IO, checked against what this loader can feed. */
export function denoiserLayout(session: OnnxSession) {
  const file = session.file;
  const latent = session.findInput(LATENT_INPUTS);
  if (!latent) throw new ModelLayoutError(file, "input 'sample'", "a latent input named 'sample' (U-Net) or 'hidden_states' (transformer)", `inputs ${[...session.inputs.keys()].map((n) => `'${n}'`).join(', ')}`);
  // [batch, C, H, W] for images; [batch, frames, C, H, W] for video.
  session.input(latent.name, { types: [...FLOATS], ranks: [4, 5] });
  const timestep = session.findInput(TIMESTEP_INPUTS);
  if (!timestep) throw new ModelLayoutError(file, "input 'timestep'", "a timestep input named 'timestep'", `inputs ${[...session.inputs.keys()].map((n) => `'${n}'`).join(', ')}`);
  session.input(timestep.name, { types: ['float32', 'float16', 'float64', 'int64', 'int32'], ranks: [0, 1] });
  const context = session.input('encoder_hidden_states', { types: [...FLOATS], ranks: [3] });
  const pooled = session.findInput(POOLED_INPUTS);
  if (pooled) session.input(pooled.name, { types: [...FLOATS], ranks: [2] });
  const fed = new Set([latent.name, timestep.name, context.name, ...(pooled ? [pooled.name] : [])]);
  for (const name of session.inputs.keys()) {
    if (!fed.has(name)) throw new ModelLayoutError(file, `input '${name}'`, `only inputs this loader feeds (${[...fed].join(', ')})`, `an extra input '${name}' (SDXL time ids, FLUX image/text ids and guidance are not supported yet)`);
  }
  const outName = session.outputs.has('out_sample') ? 'out_sample' : session.outputs.size === 1 ? [...session.outputs.keys()][0]! : null;
  if (outName === null) throw new ModelLayoutError(file, "output 'out_sample'", "an output named 'out_sample' (or a single output)", `outputs ${[...session.outputs.keys()].join(', ')}`);
  const output = session.output(outName, { types: [...FLOATS], ranks: [latent.rank] });
  return { latent, timestep, context, pooled, output };
}

export class OnnxDenoiser implements Denoiser {
  readonly latentSize: number;
  readonly latentShape: readonly number[];
  readonly prediction: PredictionType;
  readonly forwardPassesPerNfe: number;
  /** Graph calls made (a fixed-batch graph takes several per predict). */
  calls = 0;
  private readonly cfg: boolean;
  private readonly layout: ReturnType<typeof denoiserLayout>;
  private readonly fixed: number | null;
  private readonly timestepLayout: TimestepLayout;
  private readonly contexts = new Map<string, ContextFeed>();
  private contextBytes = 0;
  private readonly spareSamples: SampleFeed[] = [];

  constructor(private readonly setup: DenoiserSetup) {
    const { session, cond } = setup;
    this.layout = denoiserLayout(session);
    const { latent, context } = this.layout;
    session.input(latent.name, { types: [...FLOATS], ranks: [1 + setup.latentShape.length], dims: [null, ...setup.latentShape] });
    session.input(context.name, { types: [...FLOATS], ranks: [3], dims: [null, cond.tokens, cond.dim] });
    if (this.layout.pooled && cond.pooled === null) {
      throw new ModelLayoutError(session.file, `input '${this.layout.pooled.name}'`, 'a pooled text embedding from the text encoder', 'a text encoder without pooler_output/text_embeds');
    }
    this.latentShape = [...setup.latentShape];
    this.latentSize = setup.latentShape.reduce((a, b) => a * b, 1);
    this.prediction = setup.prediction;
    this.cfg = setup.guidanceScale > 1;
    this.forwardPassesPerNfe = this.cfg ? 2 : 1;
    this.fixed = fixedBatch(latent);
    this.timestepLayout = { type: this.layout.timestep.type as TimestepLayout['type'], rank: this.layout.timestep.rank as 0 | 1 };
    const contextBatch = fixedBatch(context);
    if (this.fixed !== contextBatch) {
      throw new ModelLayoutError(session.file, `input '${context.name}'`, `the same batch axis as '${latent.name}' (${this.fixed ?? 'symbolic'})`, `[${context.dims.join(', ')}]`);
    }
  }

  get guidance(): boolean {
    return this.cfg;
  }

  async predict(latents: Float32Array, batch: number, time: StepTime, out: Float32Array): Promise<void> {
    const size = this.latentSize;
    const rows = this.cfg ? 2 * batch : batch;
    const step = this.fixed ?? Math.min(rows, this.setup.maxRows ?? rows);
    const { session } = this.setup;
    const { latent, timestep, context, pooled, output } = this.layout;
    const t = time.timestep * this.setup.timestepScale;
    const w = this.setup.guidanceScale;
    for (let start = 0; start < rows; start += step) {
      const n = Math.min(step, rows - start);
      // A fixed-batch graph gets full chunks: the last one is padded with copies of its last row.
      const feedRows = this.fixed ?? n;
      const sample = this.takeSample(feedRows);
      let result: Record<string, ort.Tensor>;
      try {
        for (let r = 0; r < feedRows; r++) {
          const row = start + Math.min(r, n - 1);
          // Rows [0, batch) are unconditional when guiding, [batch, 2 batch) conditional.
          const index = this.cfg ? row % batch : row;
          sample.values.set(latents.subarray(index * size, (index + 1) * size), r * size);
        }
        if (sample.half !== null) float32ToFloat16(sample.values, sample.half);
        const embeddings = this.contextFeed(start, n, feedRows, batch);
        const feeds = {
          [latent.name]: sample.tensor,
          [timestep.name]: timestepTensor(this.timestepLayout, t, typeof timestep.dims[0] === 'number' ? timestep.dims[0] : feedRows),
          [context.name]: embeddings.context,
          ...(pooled && embeddings.pooled ? { [pooled.name]: embeddings.pooled } : {}),
        };
        result = await session.run(feeds, [output.name]);
      } finally {
        this.giveBackSample(sample);
      }
      this.calls += 1;
      const values = readFloats(result[output.name]!, `${session.file} ${output.name}`);
      if (values.length < n * size) throw new ModelLayoutError(session.file, `output '${output.name}'`, `${feedRows} x [${this.latentShape.join(', ')}]`, `[${result[output.name]!.dims.join(', ')}]`);
      if (!this.cfg) {
        out.set(values.subarray(0, n * size), start * size);
        continue;
      }
      // Unconditional rows go to `out` as they are; conditional rows are combined with them there,
      // uncond + w (cond - uncond), as the rows of a batch come in order.
      const uncondEnd = Math.min(start + n, batch);
      if (uncondEnd > start) out.set(values.subarray(0, (uncondEnd - start) * size), start * size);
      const condStart = Math.max(start, batch);
      const from = (condStart - start) * size;
      const to = n * size;
      for (let i = from, o = (condStart - batch) * size; i < to; i++, o++) {
        const u = out[o]!;
        out[o] = u + w * (values[i]! - u);
      }
    }
  }

  private takeSample(rows: number): SampleFeed {
    const at = this.spareSamples.findIndex((spare) => spare.rows === rows);
    if (at >= 0) return this.spareSamples.splice(at, 1)[0]!;
    const values = new Float32Array(rows * this.latentSize);
    const dims = [rows, ...this.latentShape];
    if (this.layout.latent.type === 'float16') {
      const half = new Uint16Array(values.length);
      return { rows, values, half, tensor: new ort.Tensor('float16', half, dims) };
    }
    return { rows, values, half: null, tensor: new ort.Tensor('float32', values, dims) };
  }

  private giveBackSample(sample: SampleFeed): void {
    this.spareSamples.push(sample);
    if (this.spareSamples.length > SPARE_SAMPLES) this.spareSamples.shift();
  }

  /** The context (and pooled) tensors of a chunk: built once per layout, then reused at every step. */
  private contextFeed(start: number, n: number, feedRows: number, batch: number): ContextFeed {
    // A chunk's rows are unconditional up to some row and conditional after it (padding repeats the last).
    let uncondRows = 0;
    if (this.cfg) while (uncondRows < feedRows && start + Math.min(uncondRows, n - 1) < batch) uncondRows++;
    const key = `${feedRows}:${uncondRows}`;
    const cached = this.contexts.get(key);
    if (cached !== undefined) {
      this.contexts.delete(key);
      this.contexts.set(key, cached);
      return cached;
    }
    const { cond, uncond } = this.setup;
    const { context, pooled } = this.layout;
    const contextSize = cond.tokens * cond.dim;
    const hidden = new Float32Array(feedRows * contextSize);
    const pooledRows = pooled ? new Float32Array(feedRows * cond.dim) : null;
    for (let r = 0; r < feedRows; r++) {
      const embedding = r < uncondRows ? uncond : cond;
      hidden.set(embedding.hidden, r * contextSize);
      pooledRows?.set(embedding.pooled!, r * cond.dim);
    }
    const feed: ContextFeed = {
      context: floatTensor(context.type as FloatType, hidden, [feedRows, cond.tokens, cond.dim]),
      pooled: pooled && pooledRows ? floatTensor(pooled.type as FloatType, pooledRows, [feedRows, cond.dim]) : null,
      bytes: (context.type === 'float16' ? 2 : 4) * (hidden.length + (pooledRows?.length ?? 0)),
    };
    // Least recently used first out; the newest stays even when it alone is over the bound.
    for (const [k, old] of this.contexts) {
      if (this.contextBytes + feed.bytes <= CONTEXT_CACHE_BYTES) break;
      this.contexts.delete(k);
      this.contextBytes -= old.bytes;
    }
    this.contexts.set(key, feed);
    this.contextBytes += feed.bytes;
    return feed;
  }
}
