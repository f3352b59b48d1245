/**
 * The bundle's text encoder: token rows in, per-token hidden states (the denoiser's
 * encoder_hidden_states) and the pooled embedding out. Runs once per prompt at load time.
 */
import { fixedBatch, OnnxSession, type OpenSessionOptions } from '../runtime/onnx-session.js';
import { ModelLayoutError } from '../runtime/model-layout-error.js';
import { readFloats, tokenTensor, type IntType } from '../runtime/tensors.js';

const FLOATS = ['float32', 'float16'] as const;

/** One prompt's embedding, float32 on the host. */
export interface PromptEmbedding {
  /** [tokens, dim] hidden states, row-major. */
  readonly hidden: Float32Array;
  readonly tokens: number;
  readonly dim: number;
  /** [dim] pooled output (pooler_output / text_embeds), when the graph has one. */
  readonly pooled: Float32Array | null;
}

export class OnnxTextEncoder {
  private constructor(
    readonly session: OnnxSession,
    private readonly idsName: string,
    private readonly idsType: IntType,
    /** The fixed sequence length of input_ids, or null when symbolic. */
    readonly tokenLength: number | null,
    private readonly hiddenName: string,
    private readonly pooledName: string | null,
  ) {}

  static async open(file: string, options: OpenSessionOptions): Promise<OnnxTextEncoder> {
    const session = await OnnxSession.open(file, options);
    const ids = session.input('input_ids', { types: ['int64', 'int32'], ranks: [2] });
    for (const name of session.inputs.keys()) {
      if (name !== 'input_ids') throw new ModelLayoutError(file, `input '${name}'`, "only 'input_ids' (attention masks are not fed: CLIP text encoders in SD exports take none)", `inputs ${[...session.inputs.keys()].join(', ')}`);
    }
    const hiddenName = session.outputs.has('last_hidden_state') ? 'last_hidden_state' : [...session.outputs.keys()][0]!;
    session.output(hiddenName, { types: [...FLOATS], ranks: [3] });
    const pooledName = ['pooler_output', 'text_embeds'].find((n) => session.outputs.has(n)) ?? null;
    if (pooledName) session.output(pooledName, { types: [...FLOATS], ranks: [2] });
    const length = typeof ids.dims[1] === 'number' ? ids.dims[1] : null;
    return new OnnxTextEncoder(session, 'input_ids', ids.type as IntType, length, hiddenName, pooledName);
  }

  /** Embeds each row of ids (all of the same length), one graph call per fixed batch if the graph fixes one. */
  async encode(rows: readonly Int32Array[]): Promise<PromptEmbedding[]> {
    const fixed = fixedBatch(this.session.input(this.idsName));
    const step = fixed ?? rows.length;
    const out: PromptEmbedding[] = [];
    for (let start = 0; start < rows.length; start += step) {
      const n = Math.min(step, rows.length - start);
      const feedRows = fixed ?? n;
      const length = rows[0]!.length;
      const ids = new Int32Array(feedRows * length);
      for (let r = 0; r < feedRows; r++) ids.set(rows[start + Math.min(r, n - 1)]!, r * length);
      const result = await this.session.run({ [this.idsName]: tokenTensor(this.idsType, ids, [feedRows, length]) });
      const hiddenTensor = result[this.hiddenName]!;
      const [, tokens, dim] = hiddenTensor.dims as [number, number, number];
      const hidden = readFloats(hiddenTensor, `${this.session.file} ${this.hiddenName}`);
      const pooled = this.pooledName ? readFloats(result[this.pooledName]!, `${this.session.file} ${this.pooledName}`) : null;
      for (let r = 0; r < n; r++) {
        out.push({
          hidden: hidden.slice(r * tokens * dim, (r + 1) * tokens * dim),
          tokens,
          dim,
          pooled: pooled ? pooled.slice(r * dim, (r + 1) * dim) : null,
        });
      }
    }
    return out;
  }
}
