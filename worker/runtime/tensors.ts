/**
 * Host-side tensor conversions for ONNX graphs: float32 <-> float16 (fp16 exports take and return IEEE
 * half floats, which Node 20 has no typed array for, so they travel as Uint16Array bits), token ids as
 * int64 or int32, the timestep in whatever rank and type the graph declares, and copies into aligned
 * buffers (a typed-array view needs an offset that is a multiple of its element size).
 */
import * as ort from 'onnxruntime-node';

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE binary16 bits of `value`, rounded to nearest, ties to even; overflow gives +-Inf, NaN stays NaN. */
export function toFloat16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13); // Inf, or a quiet NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e >= 1) {
    let half = sign | (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    // A carry out of the mantissa correctly bumps the exponent (and 65520 and up become Inf).
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half += 1;
    return half;
  }
  // Subnormal half: value = m * 2^-24 with m = full >> shift.
  const shift = 14 - e; // = 126 - exp, at least 14
  if (shift > 24) return sign; // below half the smallest subnormal: rounds to zero
  const full = mant | 0x800000;
  let m = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (m & 1) === 1)) m += 1;
  return sign | m;
}

let halfTable: Float32Array | null = null;

/** The float value of IEEE binary16 bits `h`. */
export function fromFloat16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Converts float32 values to float16 bits (into `out` when given). */
export function float32ToFloat16(values: ArrayLike<number>, out = new Uint16Array(values.length)): Uint16Array {
  if (out.length < values.length) throw new RangeError(`float32ToFloat16: out holds ${out.length}, need ${values.length}`);
  for (let i = 0; i < values.length; i++) out[i] = toFloat16Bits(values[i]!);
  return out;
}

/** Converts float16 bits to float32 (into `out` when given), through a 65536-entry table built once. */
export function float16ToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  if (out.length < bits.length) throw new RangeError(`float16ToFloat32: out holds ${out.length}, need ${bits.length}`);
  if (halfTable === null) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = fromFloat16Bits(h);
  }
  const table = halfTable;
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** Floating-point element types a graph may declare for a float input or output. */
export type FloatType = 'float32' | 'float16';
/** Integer element types a graph may declare for token ids or an integer timestep. */
export type IntType = 'int64' | 'int32';

/** A float tensor of the graph's declared type from float32 host values (copied; `values` may be reused). */
export function floatTensor(type: FloatType, values: Float32Array, dims: readonly number[]): ort.Tensor {
  if (type === 'float16') return new ort.Tensor('float16', float32ToFloat16(values), dims);
  return new ort.Tensor('float32', Float32Array.from(values), dims);
}

/** A float32 view (or copy) of a float output, whatever float type the graph returned. */
export function readFloats(tensor: ort.Tensor, what: string): Float32Array {
  switch (tensor.type) {
    case 'float32':
      return tensor.data as Float32Array;
    case 'float16': {
      const data = tensor.data as unknown;
      // onnxruntime-common hands float16 back as Uint16Array bits (or a Float16Array where the runtime has one).
      if (data instanceof Uint16Array) return float16ToFloat32(data);
      return Float32Array.from(data as ArrayLike<number>);
    }
    case 'float64':
      return Float32Array.from(tensor.data as Float64Array);
    default:
      throw new TypeError(`${what}: expected a float tensor, got ${tensor.type}`);
  }
}

/** Token ids as the graph declares them: int64 (BigInt64Array) or int32. */
export function tokenTensor(type: IntType, ids: ArrayLike<number>, dims: readonly number[]): ort.Tensor {
  if (type === 'int64') {
    const data = new BigInt64Array(ids.length);
    for (let i = 0; i < ids.length; i++) data[i] = BigInt(ids[i]!);
    return new ort.Tensor('int64', data, dims);
  }
  return new ort.Tensor('int32', Int32Array.from(ids), dims);
}

/** How a graph takes its timestep: rank 0 (optimum exports) or rank 1 of length batch (older exports). */
export interface TimestepLayout {
  readonly type: FloatType | IntType | 'float64';
  readonly rank: 0 | 1;
}

/** The timestep tensor for one call over `batch` rows. Integer graphs get the rounded value. */
export function timestepTensor(layout: TimestepLayout, timestep: number, batch: number): ort.Tensor {
  const dims = layout.rank === 0 ? [] : [batch];
  const n = layout.rank === 0 ? 1 : batch;
  switch (layout.type) {
    case 'float32':
      return new ort.Tensor('float32', new Float32Array(n).fill(timestep), dims);
    case 'float64':
      return new ort.Tensor('float64', new Float64Array(n).fill(timestep), dims);
    case 'float16':
      return new ort.Tensor('float16', new Uint16Array(n).fill(toFloat16Bits(timestep)), dims);
    case 'int64':
      return new ort.Tensor('int64', new BigInt64Array(n).fill(BigInt(Math.round(timestep))), dims);
    case 'int32':
      return new ort.Tensor('int32', new Int32Array(n).fill(Math.round(timestep)), dims);
  }
}

type TypedArrayConstructor<T> = { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; readonly BYTES_PER_ELEMENT: number };

/**
 * Views `bytes` as `ctor` elements, copying into a fresh aligned buffer when the bytes start at an offset
 * the element size does not divide (a protobuf/gRPC `bytes` field arrives at an arbitrary offset).
 */
export function alignedView<T>(bytes: Uint8Array, ctor: TypedArrayConstructor<T>): T {
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) throw new RangeError(`alignedView: ${bytes.byteLength} bytes is not a whole number of ${size}-byte elements`);
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / size);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new ctor(copy.buffer, 0, bytes.byteLength / size);
}
