/**
 * A model whose calls made at the same time are merged into batches. Recovery needs it: rebuilding
 * lost states walks every recipe path at once, and each path makes calls for one state; merged, the
 * walk costs about what the original batched rounds cost instead of one model call per state and step.
 * Results do not change: a latent's output never depends on the batch it is in (ExecutorOptions).
 */
import type { GenerativeModel, RewardModel } from './models/generator.js';
import { TurnQueue } from '../async/timeouts-and-turns.js';

type Output = Float32Array | Float64Array;

interface Call {
  readonly input: Float32Array;
  readonly batch: number;
  readonly out: Output;
  resolve(): void;
  reject(error: unknown): void;
}

/** One kind of call (the denoiser at one step time, the decoder, one reward model): its calls merge. */
interface Group {
  readonly calls: Call[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly output: (length: number) => Output;
  readonly run: (input: Float32Array, batch: number, out: Output) => void | Promise<void>;
}

class CallMerger {
  private groups = new Map<string, Group>();
  private scheduled = false;
  /** Merged calls run one after another, never two at once on the same sessions. */
  private readonly turns = new TurnQueue();

  constructor(private readonly maxBatch: number) {}

  call(key: string, shape: Omit<Group, 'calls'>, input: Float32Array, batch: number, out: Output): Promise<void> {
    let group = this.groups.get(key);
    if (group === undefined) this.groups.set(key, (group = { ...shape, calls: [] }));
    const calls = group.calls;
    return new Promise<void>((resolve, reject) => {
      calls.push({ input, batch, out, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the current turn, when every caller that is ready has made its call.
        setImmediate(() => {
          this.scheduled = false;
          const groups = [...this.groups.values()];
          this.groups = new Map();
          void this.turns.run(() => this.runGroups(groups));
        });
      }
    });
  }

  private async runGroups(groups: readonly Group[]): Promise<void> {
    for (const group of groups) {
      for (let start = 0; start < group.calls.length; ) {
        const chunk: Call[] = [];
        let batch = 0;
        while (start < group.calls.length && (chunk.length === 0 || batch + group.calls[start]!.batch <= this.maxBatch)) {
          batch += group.calls[start]!.batch;
          chunk.push(group.calls[start++]!);
        }
        await this.runChunk(group, chunk, batch);
      }
    }
  }

  private async runChunk(group: Group, chunk: readonly Call[], batch: number): Promise<void> {
    try {
      if (chunk.length === 1) {
        await group.run(chunk[0]!.input, batch, chunk[0]!.out);
      } else {
        const input = new Float32Array(batch * group.inputSize);
        let offset = 0;
        for (const call of chunk) {
          input.set(call.input.subarray(0, call.batch * group.inputSize), offset);
          offset += call.batch * group.inputSize;
        }
        const out = group.output(batch * group.outputSize);
        await group.run(input, batch, out);
        offset = 0;
        for (const call of chunk) {
          call.out.set(out.subarray(offset, offset + call.batch * group.outputSize));
          offset += call.batch * group.outputSize;
        }
      }
      for (const call of chunk) call.resolve();
    } catch (error) {
      for (const call of chunk) call.reject(error);
    }
  }
}

/** `model` with its denoiser, decoder and rewards merging concurrent calls into batches of up to `maxBatch`. */
export function coalescingModel(model: GenerativeModel, maxBatch: number): GenerativeModel {
  const merger = new CallMerger(maxBatch);
  const { denoiser, decoder } = model;
  const f32 = (n: number) => new Float32Array(n);
  const rewards = model.rewards.map((reward, index): RewardModel => ({
    name: reward.name,
    ...(reward.embeddingSize !== undefined ? { embeddingSize: reward.embeddingSize } : {}),
    score: (samples, batch, out) => merger.call(`reward:${index}`, { inputSize: decoder.sampleSize, outputSize: 1, output: (n) => new Float64Array(n), run: (i, b, o) => reward.score(i, b, o as Float64Array) }, samples, batch, out),
    ...(reward.embed ? { embed: reward.embed.bind(reward) } : {}),
  }));
  return {
    id: model.id,
    ...(model.describe ? { describe: model.describe.bind(model) } : {}),
    denoiser: {
      latentSize: denoiser.latentSize,
      latentShape: denoiser.latentShape,
      prediction: denoiser.prediction,
      forwardPassesPerNfe: denoiser.forwardPassesPerNfe,
      // Calls at the same step time merge; a group's shape comes from its first call, so its time is theirs.
      predict: (latents, batch, time, out) =>
        merger.call(`denoise:${JSON.stringify(time)}`, { inputSize: denoiser.latentSize, outputSize: denoiser.latentSize, output: f32, run: (i, b, o) => denoiser.predict(i, b, time, o as Float32Array) }, latents, batch, out),
    },
    decoder: {
      sampleSize: decoder.sampleSize,
      sampleShape: decoder.sampleShape,
      decode: (latents, batch, out) => merger.call('decode', { inputSize: denoiser.latentSize, outputSize: decoder.sampleSize, output: f32, run: (i, b, o) => decoder.decode(i, b, o as Float32Array) }, latents, batch, out),
    },
    rewards,
  };
}
