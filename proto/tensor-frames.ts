/**
 * Commands and results on the wire: their metadata as JSON with every Float32Array lifted out, and
 * the tensors as byte chunks small enough for gRPC's message limit. Both sides use this one codec.
 */
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** Bytes of tensor data per chunk: an eighth of the gRPC message limit (proto/grpc-limits.ts). */
export const CHUNK_BYTES = 1 << 20;

/**
 * The most a single message body may announce, tensors together (default 4 GiB: far above any latent
 * batch of the models here, far below what would take a worker's memory). A header over it is refused
 * before anything is allocated.
 */
export const MAX_BODY_BYTES = 4 * 2 ** 30;

export interface FrameHeader {
  readonly runId: string;
  readonly bodyJson: string;
  readonly tensorLengths: readonly number[];
}

export interface TensorChunk {
  readonly tensor: number;
  readonly offset: number;
  readonly data: Uint8Array;
}

/** One message of an Execute stream (the `Frame` of proto/worker.proto). */
export type Frame = { readonly header: FrameHeader } | { readonly chunk: TensorChunk } | { readonly end: Record<string, never> };

/** A frame stream that cannot be decoded: names what is wrong (the peer is broken or hostile). */
export class FrameError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'FrameError';
}

/**
 * `value` as JSON text with its Float32Arrays lifted out (the wire form, also used by checkpoints),
 * and back. Non-finite numbers survive ({"$num": "NaN"}).
 */
export function liftTensors(value: unknown): { readonly json: string; readonly tensors: Float32Array[] } {
  const tensors: Float32Array[] = [];
  return { json: JSON.stringify(lift(value, tensors)), tensors };
}

export function lowerTensors(json: string, tensors: readonly Float32Array[]): unknown {
  return lower(JSON.parse(json), tensors);
}

/** Replaces each Float32Array by {"$f32": index}, and non-finite numbers (which JSON cannot hold) by {"$num": "NaN"}. */
function lift(value: unknown, tensors: Float32Array[]): unknown {
  if (value instanceof Float32Array) {
    tensors.push(value);
    return { $f32: tensors.length - 1 };
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value : { $num: String(value) };
  if (typeof value === 'bigint') throw new FrameError(`bigint ${value} has no wire form; send it as a decimal string`);
  if (ArrayBuffer.isView(value)) throw new FrameError(`${value.constructor.name} has no wire form; only Float32Array tensors travel`);
  if (Array.isArray(value)) return value.map((v) => lift(v, tensors));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = lift(v, tensors);
    return out;
  }
  return value;
}

function lower(value: unknown, tensors: readonly Float32Array[]): unknown {
  if (Array.isArray(value)) return value.map((v) => lower(v, tensors));
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (typeof record.$f32 === 'number') {
      const tensor = tensors[record.$f32];
      if (tensor === undefined) throw new FrameError(`body refers to tensor ${record.$f32}, but the header lists ${tensors.length}`);
      return tensor;
    }
    if (typeof record.$num === 'string') return Number(record.$num);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(record)) out[k] = lower(v, tensors);
    return out;
  }
  return value;
}

/**
 * Body JSON up to this many UTF-8 bytes travels in the header; a longer one (a recovery's recipes for
 * thousands of states, a large replay) travels as the last tensor's bytes, in chunks like any tensor,
 * so no message grows with the run.
 */
export const INLINE_BODY_BYTES = 256 * 1024;

const SPACE = 0x20;

/** The frames that carry `body` (commands or results). */
export function* encodeFrames(runId: string, body: unknown): Generator<Frame> {
  const tensors: Float32Array[] = [];
  let bodyJson = JSON.stringify(lift(body, tensors));
  const utf8 = Buffer.from(bodyJson, 'utf8');
  if (utf8.length > INLINE_BODY_BYTES) {
    // As a tensor of float32 lengths: padded with spaces, which JSON ignores, to a multiple of 4 bytes.
    const padded = new Uint8Array(Math.ceil(utf8.length / 4) * 4).fill(SPACE);
    padded.set(utf8);
    tensors.push(new Float32Array(padded.buffer));
    bodyJson = '';
  }
  yield { header: { runId, bodyJson, tensorLengths: tensors.map((t) => t.length) } };
  for (let index = 0; index < tensors.length; index++) {
    const t = tensors[index]!;
    const bytes = new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
    for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
      yield { chunk: { tensor: index, offset, data: bytes.subarray(offset, Math.min(bytes.length, offset + CHUNK_BYTES)) } };
    }
  }
  yield { end: {} };
}

/**
 * Reassembles one body from its frames. Tensor bytes arrive at arbitrary offsets in gRPC's buffers, so
 * each tensor gets its own aligned Float32Array and the chunks are copied in.
 */
export class FrameAssembler {
  constructor(private readonly maxBodyBytes = MAX_BODY_BYTES) {}

  private header: FrameHeader | null = null;
  private tensors: Float32Array[] = [];
  private received: number[] = [];
  private ended = false;

  /** Adds a frame; returns the body once the end frame has arrived. */
  add(frame: Frame): { readonly runId: string; readonly body: unknown } | null {
    if (this.ended) throw new FrameError('frame after the end frame');
    if ('header' in frame) {
      if (this.header !== null) throw new FrameError('a second header frame');
      const announced = frame.header.tensorLengths.reduce((a, n) => a + Number(n) * 4, 0);
      if (!Number.isFinite(announced) || announced > this.maxBodyBytes) {
        throw new FrameError(`the header announces ${frame.header.tensorLengths.length} tensors of ${announced} bytes in all, over the limit of ${this.maxBodyBytes} bytes`);
      }
      this.header = frame.header;
      this.tensors = frame.header.tensorLengths.map((n) => new Float32Array(Number(n)));
      this.received = this.tensors.map(() => 0);
      return null;
    }
    if (this.header === null) throw new FrameError('a chunk or end frame before the header');
    if ('chunk' in frame) {
      const { tensor, offset, data } = frame.chunk;
      const target = this.tensors[tensor];
      if (target === undefined) throw new FrameError(`chunk for tensor ${tensor}; the header lists ${this.tensors.length}`);
      const at = Number(offset);
      if (at + data.length > target.byteLength) throw new FrameError(`chunk of ${data.length} bytes at ${at} overruns tensor ${tensor} (${target.byteLength} bytes)`);
      new Uint8Array(target.buffer).set(data, at);
      this.received[tensor]! += data.length;
      return null;
    }
    this.ended = true;
    const short = this.tensors.findIndex((t, i) => this.received[i] !== t.byteLength);
    if (short >= 0) throw new FrameError(`tensor ${short} got ${this.received[short]} of ${this.tensors[short]!.byteLength} bytes`);
    // An empty body_json: the body is the last tensor's bytes (encodeFrames, INLINE_BODY_BYTES).
    const chunked = this.header.bodyJson === '';
    if (chunked && this.tensors.length === 0) throw new FrameError('the header has an empty body and no tensor to carry it');
    const json = chunked ? new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(this.tensors.pop()!.buffer)) : this.header.bodyJson;
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (error) {
      throw new FrameError(`${chunked ? 'chunked' : 'header'} body is not JSON: ${(error as Error).message}`, { cause: error });
    }
    return { runId: this.header.runId, body: lower(parsed, this.tensors) };
  }
}
