/**
 * Addressable noise: every draw is a pure function of (run seed, purpose, lineage, step, element index),
 * so a worker can produce exactly the numbers any other worker would, in any order or batching, after
 * any crash (docs/algorithms.md, section 7).
 *
 * Layout of one Philox4x32-10 call (see philox.ts):
 *
 *   key     k0 = seed bits 0..31, k1 = seed bits 32..63         (the 64-bit run seed, verbatim)
 *   counter c0 = block index within the stream                  (0 .. 2^32 - 1)
 *           c1 = lineage                                        (0 .. 2^32 - 1)
 *           c2 = step                                           (0 .. 2^32 - 1)
 *           c3 = purpose index (bits 0..7, NOISE_PURPOSES order)
 *              | stream kind << 8 (0 = normals, 1 = uniforms); bits 16..31 are zero, reserved
 *
 * Every field is written into its own bits, with no hashing, so distinct (seed, address, kind, block)
 * tuples are distinct (key, counter) pairs; for a fixed key Philox is a bijection on counters, so no
 * two of them can produce the same block. The stream kind keeps `normals` and `uniforms` of the same
 * address from reusing the same bits (which would correlate them).
 *
 * Within a stream each block holds 4 uint32 words:
 *   normals:  element k uses block k >> 2; words (0,1) give elements 4b, 4b+1 and words (2,3) give
 *             4b+2, 4b+3 by Box-Muller. So a stream holds 2^34 normals.
 *   uniforms: element k uses block k >> 1, words (0,1) or (2,3): 53-bit doubles in [0, 1). 2^33 per stream.
 *
 * Element k is fixed by k alone: filling [offset, offset + n) computes exactly the blocks that range
 * touches, so lengths, chunkings and what was drawn before make no difference.
 *
 * NOISE_PURPOSES order is part of the layout: append new purposes, never reorder, or old runs replay
 * different noise.
 */
import type { NoiseAddress } from './noise-address.js';
import { checkAddress, checkRange, NoiseAddressError, seedToKey } from './noise-address-error.js';
import { philox4x32 } from './philox.js';

const KIND_NORMALS = 0;
const KIND_UNIFORMS = 1;

/** Elements one address's normal stream holds: 2^32 blocks of 4. */
export const NORMALS_PER_STREAM = 2 ** 34;
/** Elements one address's uniform stream holds: 2^32 blocks of 2. */
export const UNIFORMS_PER_STREAM = 2 ** 33;

const TWO_PI = 2 * Math.PI;
const TWO_POW_M32 = 2 ** -32;
const TWO_POW_M53 = 2 ** -53;

export class NoiseSource {
  private readonly k0: number;
  private readonly k1: number;
  /** Reused block buffer: no allocation per element or per block. */
  private readonly block = new Uint32Array(4);
  /** Reused Box-Muller output for the ragged first and last blocks of a range. */
  private readonly edge = new Float64Array(4);

  /** `seed`: the run seed, an integer in [0, 2^64) (a number must be a safe integer). */
  constructor(seed: number | bigint) {
    const { k0, k1 } = seedToKey(seed);
    this.k0 = k0;
    this.k1 = k1;
  }

  /**
   * Fills `out` with standard normals: out[i] = element (offset + i) of the address's normal stream.
   * Box-Muller on 32-bit uniforms: the radius uses u = (w + 0.5) / 2^32, which lies in (0, 1) and
   * so never takes log(0) (|z| is therefore capped at about 6.76; P(|z| > 6.76) is ~1.3e-11);
   * the angle uses w / 2^32 in [0, 1). Computed in double, rounded once to float32.
   */
  normals(address: NoiseAddress, out: Float32Array, offset = 0): Float32Array {
    const c3 = checkAddress(address) | (KIND_NORMALS << 8);
    const length = out.length;
    checkRange('offset', offset, length, NORMALS_PER_STREAM);
    if (length === 0) return out;
    const c1 = address.lineage;
    const c2 = address.step;
    const { k0, k1, block, edge } = this;

    const end = offset + length; // exclusive stream index
    const firstBlock = Math.floor(offset / 4);
    const lastBlock = Math.floor((end - 1) / 4);
    for (let b = firstBlock; b <= lastBlock; b++) {
      philox4x32(b, c1, c2, c3, k0, k1, block);
      const r0 = Math.sqrt(-2 * Math.log((block[0] + 0.5) * TWO_POW_M32));
      const t0 = TWO_PI * (block[1] * TWO_POW_M32);
      const r1 = Math.sqrt(-2 * Math.log((block[2] + 0.5) * TWO_POW_M32));
      const t1 = TWO_PI * (block[3] * TWO_POW_M32);
      const start = b * 4; // stream index of this block's element 0
      if (start >= offset && start + 4 <= end) {
        // Whole block inside the range: the common case, written straight through.
        const i = start - offset;
        out[i] = r0 * Math.cos(t0);
        out[i + 1] = r0 * Math.sin(t0);
        out[i + 2] = r1 * Math.cos(t1);
        out[i + 3] = r1 * Math.sin(t1);
      } else {
        edge[0] = r0 * Math.cos(t0);
        edge[1] = r0 * Math.sin(t0);
        edge[2] = r1 * Math.cos(t1);
        edge[3] = r1 * Math.sin(t1);
        const from = Math.max(start, offset);
        const to = Math.min(start + 4, end);
        for (let s = from; s < to; s++) out[s - offset] = edge[s - start];
      }
    }
    return out;
  }

  /**
   * Fills `out` with uniforms in [0, 1) carrying 53 random bits each (every double of the form
   * m / 2^53): out[i] = element (offset + i) of the address's uniform stream, which is separate
   * from its normal stream.
   */
  uniforms(address: NoiseAddress, out: Float64Array, offset = 0): Float64Array {
    const c3 = checkAddress(address) | (KIND_UNIFORMS << 8);
    const length = out.length;
    checkRange('offset', offset, length, UNIFORMS_PER_STREAM);
    if (length === 0) return out;
    const c1 = address.lineage;
    const c2 = address.step;
    const { k0, k1, block } = this;

    const end = offset + length;
    const firstBlock = Math.floor(offset / 2);
    const lastBlock = Math.floor((end - 1) / 2);
    for (let b = firstBlock; b <= lastBlock; b++) {
      philox4x32(b, c1, c2, c3, k0, k1, block);
      const start = b * 2;
      if (start >= offset) out[start - offset] = uniform53(block[0], block[1]);
      if (start + 1 < end) out[start + 1 - offset] = uniform53(block[2], block[3]);
    }
    return out;
  }

  /** Element `index` of the address's uniform stream: the same number `uniforms` puts there. */
  uniform(address: NoiseAddress, index: number): number {
    const c3 = checkAddress(address) | (KIND_UNIFORMS << 8);
    checkRange('index', index, 1, UNIFORMS_PER_STREAM);
    const { block } = this;
    philox4x32(Math.floor(index / 2), address.lineage, address.step, c3, this.k0, this.k1, block);
    return (index & 1) === 0 ? uniform53(block[0], block[1]) : uniform53(block[2], block[3]);
  }

  /**
   * An integer in [0, n), n in [1, 2^32]: floor(uniform(address, index) * n), so it is addressed like
   * uniforms. Not rejection sampling (which would make the element count data-dependent); the bias is
   * at most one part in 2^53 / n per outcome, below 2^-21 even for n = 2^32.
   */
  uniformInt(address: NoiseAddress, index: number, n: number): number {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 2 ** 32) {
      throw new NoiseAddressError('n', n, 'an integer in [1, 2^32]');
    }
    // The min guards against u * n rounding up to n for u just below 1.
    return Math.min(n - 1, Math.floor(this.uniform(address, index) * n));
  }
}

/** Top 27 bits of a and top 26 bits of b as one 53-bit fraction (the construction numpy and MT19937 use). */
function uniform53(a: number, b: number): number {
  return ((a >>> 5) * 67108864 + (b >>> 6)) * TWO_POW_M53;
}

// Re-exported so callers can import the error from the class that throws it.
export { NoiseAddressError };
