/**
 * The frames of one Execute stream (proto/worker.proto): a header that carries the commands or results
 * as messages (proto/command-messages.ts) with every tensor replaced by its index, then the tensors as
 * byte chunks small enough for gRPC's message limit, then an end frame. Both sides use this one codec.
 */
import type { Command, CommandResult } from './commands.js';
import { commandsFromWire, commandsToWire, resultsFromWire, resultsToWire, TensorTable } from './command-messages.js';
import { TO_OBJECT, workerType } from './worker-proto.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** Bytes of tensor data per chunk: an eighth of the gRPC message limit (proto/grpc-limits.ts). */
export const CHUNK_BYTES = 1 << 20;

/**
 * The most a single message body may announce, tensors together (4 GiB: far above any latent batch of
 * the models here). A header over it is refused before anything is allocated. A worker judges each
 * header by its run as well, before allocating (HeaderAdmission): the run must be its own, and within
 * that run's limit.
 */
export const MAX_BODY_BYTES = 4 * 2 ** 30;

/**
 * Judges a header before its tensors are allocated: throws to refuse it (the error is the stream's).
 * `announcedBytes` is what its tensors add up to.
 */
export type HeaderAdmission = (runId: string, announcedBytes: number) => void;

/** What one stream carries: the request commands, the reply results. */
export type BodyKind = 'commands' | 'results';
export type Body<K extends BodyKind> = K extends 'commands' ? readonly Command[] : CommandResult[];

/**
 * The header as protobufjs reads and writes it: the body (a CommandBatch or ResultBatch message, as a
 * plain object) inline, or the byte count of the encoded body that travels as the last tensor.
 */
export interface FrameHeader {
  readonly runId: string;
  readonly tensorLengths: readonly number[];
  readonly commands?: Record<string, unknown> | null;
  readonly results?: Record<string, unknown> | null;
  readonly chunkedBodyBytes?: number;
}

/** Which member of the header's body oneof is set (protobufjs leaves the others out). */
function bodyOf(header: FrameHeader): BodyKind | 'chunked' | undefined {
  if (header.commands !== undefined && header.commands !== null) return 'commands';
  if (header.results !== undefined && header.results !== null) return 'results';
  return header.chunkedBodyBytes === undefined || header.chunkedBodyBytes === null ? undefined : 'chunked';
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
 * A body up to this many encoded bytes travels in the header; a longer one (a recovery's recipes for
 * thousands of states, a large replay) travels as the last tensor's bytes, in chunks like any tensor,
 * so no message grows with the run.
 */
export const INLINE_BODY_BYTES = 256 * 1024;

const BATCH_TYPE = { commands: workerType('CommandBatch'), results: workerType('ResultBatch') } as const;

/** The frames that carry `body`: commands (a request) or results (a reply). */
export function* encodeFrames<K extends BodyKind>(runId: string, kind: K, body: Body<K>): Generator<Frame> {
  const table = new TensorTable();
  const message = kind === 'commands' ? commandsToWire(body as Command[], table) : resultsToWire(body as CommandResult[], table);
  const tensors = table.tensors;
  const encoded = BATCH_TYPE[kind].encode(message).finish();
  let header: FrameHeader;
  if (encoded.length > INLINE_BODY_BYTES) {
    // As a tensor of float32 lengths: zero-padded to a multiple of 4 bytes; the header says how many are the body.
    const padded = new Uint8Array(Math.ceil(encoded.length / 4) * 4);
    padded.set(encoded);
    tensors.push(new Float32Array(padded.buffer));
    header = { runId, tensorLengths: tensors.map((t) => t.length), chunkedBodyBytes: encoded.length };
  } else {
    header = { runId, tensorLengths: tensors.map((t) => t.length), [kind]: message };
  }
  yield { header };
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
 * Reassembles one body from its frames, and checks it (proto/command-messages.ts). Tensor bytes arrive
 * at arbitrary offsets in gRPC's buffers, so each tensor gets its own aligned Float32Array and the
 * chunks are copied in.
 */
export class FrameAssembler<K extends BodyKind> {
  constructor(
    private readonly expects: K,
    private readonly maxBodyBytes = MAX_BODY_BYTES,
    private readonly admit?: HeaderAdmission,
  ) {}

  private header: FrameHeader | null = null;
  private tensors: Float32Array[] = [];
  private received: number[] = [];
  private ended = false;

  /** Adds a frame; returns the body once the end frame has arrived. */
  add(frame: Frame): { readonly runId: string; readonly body: Body<K> } | null {
    if (this.ended) throw new FrameError('frame after the end frame');
    if ('header' in frame) {
      if (this.header !== null) throw new FrameError('a second header frame');
      const header = frame.header;
      const announced = header.tensorLengths.reduce((a, n) => a + Number(n) * 4, 0);
      if (!Number.isFinite(announced) || announced > this.maxBodyBytes) {
        throw new FrameError(`the header announces ${header.tensorLengths.length} tensors of ${announced} bytes in all, over the limit of ${this.maxBodyBytes} bytes`);
      }
      const other = this.expects === 'commands' ? 'results' : 'commands';
      const body = bodyOf(header);
      if (body === other) throw new FrameError(`the header carries ${other} where ${this.expects} belong`);
      if (body === undefined) throw new FrameError(`the header carries no ${this.expects} (a peer of another release?)`);
      if (body === 'chunked' && (header.tensorLengths.length === 0 || Number(header.chunkedBodyBytes) > Number(header.tensorLengths.at(-1)) * 4)) {
        throw new FrameError(`the header says the body is ${header.chunkedBodyBytes} bytes of the last tensor, which holds ${Number(header.tensorLengths.at(-1) ?? 0) * 4}`);
      }
      if (header.tensorLengths.some((n) => !(Number.isSafeInteger(Number(n)) && Number(n) >= 0))) throw new FrameError('the header announces a tensor length that is not a whole number of floats');
      this.admit?.(header.runId, announced);
      this.header = header;
      this.tensors = header.tensorLengths.map((n) => new Float32Array(Number(n)));
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
    let message: Record<string, unknown>;
    if (bodyOf(this.header) === 'chunked') {
      const carrier = this.tensors.pop()!;
      const type = BATCH_TYPE[this.expects];
      try {
        message = type.toObject(type.decode(new Uint8Array(carrier.buffer, 0, Number(this.header.chunkedBodyBytes))), TO_OBJECT);
      } catch (error) {
        throw new FrameError(`the chunked body is not a ${type.name}: ${(error as Error).message}`, { cause: error });
      }
    } else {
      message = this.header[this.expects]!;
    }
    const body = (this.expects === 'commands' ? commandsFromWire(message, this.tensors) : resultsFromWire(message, this.tensors)) as Body<K>;
    return { runId: this.header.runId, body };
  }
}
