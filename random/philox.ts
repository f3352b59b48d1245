/**
 * Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
 * as easy as 1, 2, 3" (SC 2011), as shipped in Random123, curand and numpy's family of bit generators.
 *
 * A counter-based generator is a keyed bijection: block = philox(counter, key). There is no state to
 * carry between draws, so the numbers at a given counter can be computed on any worker, in any order,
 * which is what makes noise addressable (docs/algorithms.md, section 7).
 *
 * Everything here works on uint32 values held in JS numbers. The one delicate part is the high half of
 * a 32x32-bit product: the full product needs 64 bits, and a double holds only 53, so `a * b` would
 * round. See `mulhi32`.
 */

/** Round multipliers and Weyl key increments, from Random123's philox.h. */
const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** The standard (and only supported) number of rounds; 10 is what the known-answer vectors and curand use. */
export const PHILOX_ROUNDS = 10;

/**
 * High 32 bits of the 64-bit product of two uint32 values, exactly (Hacker's Delight, "mulhu").
 *
 * `a * b` in doubles would round (the product needs 64 bits, a double holds 53). Instead split both
 * factors into 16-bit halves, a = ah * 2^16 + al, and sum the partial products with their carries;
 * every intermediate stays below 2^32, so it is exact and the shifts (ToUint32) see the right bits.
 * The low half is simply Math.imul(a, b) >>> 0.
 */
export function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const t = al * bl; // < 2^32
  const m = ah * bl + (t >>> 16); // < 2^32
  const n = al * bh + (m & 0xffff); // < 2^32
  return (ah * bh + (m >>> 16) + (n >>> 16)) >>> 0;
}

/**
 * One Philox4x32-10 block: encrypts the 128-bit counter (c0..c3, c0 least significant word as in
 * Random123) under the 64-bit key (k0, k1) and writes four uint32 words to out[at..at+3].
 *
 * Written with locals and the multiply inlined (rather than calling mulhi32) because this is the inner
 * loop of every noise fill: 10^7 normals means 2.5 * 10^6 calls.
 */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
  at = 0,
): void {
  // Force uint32 so callers may pass any int32-or-uint32 representation.
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let round = 0; round < PHILOX_ROUNDS; round++) {
    // mulhi32(x0, M0) and mulhi32(x2, M1) inlined with the constants' halves written out:
    // M0 = 0xd251_1f53, M1 = 0xcd9e_8d57. Integer-only; about twice as fast as a float-based split.
    const a0l = x0 & 0xffff;
    const a0h = x0 >>> 16;
    const m0 = a0h * 0x1f53 + ((a0l * 0x1f53) >>> 16);
    const n0 = a0l * 0xd251 + (m0 & 0xffff);
    const hi0 = (a0h * 0xd251 + (m0 >>> 16) + (n0 >>> 16)) >>> 0;
    const lo0 = Math.imul(x0, PHILOX_M0) >>> 0;
    const a2l = x2 & 0xffff;
    const a2h = x2 >>> 16;
    const m2 = a2h * 0x8d57 + ((a2l * 0x8d57) >>> 16);
    const n2 = a2l * 0xcd9e + (m2 & 0xffff);
    const hi1 = (a2h * 0xcd9e + (m2 >>> 16) + (n2 >>> 16)) >>> 0;
    const lo1 = Math.imul(x2, PHILOX_M1) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
    // Weyl key schedule. Random123 bumps before rounds 2..10; bumping after rounds 1..9 is the same,
    // and the bump after round 10 is unused.
    key0 = (key0 + PHILOX_W0) >>> 0;
    key1 = (key1 + PHILOX_W1) >>> 0;
  }
  out[at] = x0;
  out[at + 1] = x1;
  out[at + 2] = x2;
  out[at + 3] = x3;
}
