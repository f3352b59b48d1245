/**
 * Validation of everything that selects a noise stream: the run seed, the address fields and the
 * element range. A bad value must fail loudly and say which field it was:
 * silently wrapping a lineage of 2^32 to 0, or truncating a step of 1.5, would hand two different
 * draws the same numbers.
 */
import { NOISE_PURPOSES, type NoiseAddress } from './noise-address.js';
import { describeValue } from '../errors/describe-value.js';

/** A seed, address field or element range that cannot name a noise stream. `field` names the culprit. */
export class NoiseAddressError extends RangeError {
  override readonly name = 'NoiseAddressError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    requirement: string,
  ) {
    super(`${field} must be ${requirement}, got ${describeValue(value)}`);
  }
}


const TWO_POW_32 = 2 ** 32;
const TWO_POW_64 = 1n << 64n;

/** The 64-bit run seed split into Philox key words (low word first). */
export interface SeedKey {
  readonly k0: number;
  readonly k1: number;
}

/**
 * Accepts a non-negative integer below 2^64: a bigint, or a number that is a safe integer (a number
 * above 2^53 has already lost its low bits, so two different intended seeds could collide).
 */
export function seedToKey(seed: number | bigint): SeedKey {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new NoiseAddressError('seed', seed, 'a non-negative safe integer (use a bigint for seeds >= 2^53)');
    }
    return { k0: seed % TWO_POW_32, k1: Math.floor(seed / TWO_POW_32) };
  }
  if (typeof seed === 'bigint') {
    if (seed < 0n || seed >= TWO_POW_64) {
      throw new NoiseAddressError('seed', seed, 'an integer in [0, 2^64)');
    }
    return { k0: Number(seed & 0xffffffffn), k1: Number(seed >> 32n) };
  }
  throw new NoiseAddressError('seed', seed, 'a number or bigint');
}

/** Throws unless `value` is an integer in [0, 2^32); returns it. */
export function checkUint32(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= TWO_POW_32) {
    throw new NoiseAddressError(field, value, 'an integer in [0, 2^32)');
  }
  return value;
}

/** Index of the purpose in NOISE_PURPOSES; throws on an unknown purpose. */
export function purposeIndex(purpose: unknown): number {
  const index = NOISE_PURPOSES.indexOf(purpose as NoiseAddress['purpose']);
  if (index < 0) {
    throw new NoiseAddressError('purpose', purpose, `one of ${NOISE_PURPOSES.join(', ')}`);
  }
  return index;
}

/** Validates a whole address; returns its purpose index. */
export function checkAddress(address: NoiseAddress): number {
  if (typeof address !== 'object' || address === null) {
    throw new NoiseAddressError('address', address, 'an object { purpose, lineage, step }');
  }
  const index = purposeIndex(address.purpose);
  checkUint32('lineage', address.lineage);
  checkUint32('step', address.step);
  return index;
}

/**
 * Throws unless [offset, offset + length) lies within a stream of `streamLength` elements.
 * `field` is what the caller called the start (offset or index).
 */
export function checkRange(field: string, offset: unknown, length: number, streamLength: number): number {
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new NoiseAddressError(field, offset, 'a non-negative integer');
  }
  if (offset + length > streamLength) {
    throw new NoiseAddressError(
      field,
      offset,
      `such that ${field} + length (${length}) <= ${streamLength}, the length of one address's stream`,
    );
  }
  return offset;
}
