/**
 * Single-precision arithmetic on JavaScript numbers. diffusers builds its schedules with float32 torch
 * tensors and float32 numpy arrays, so reproducing its timestep and sigma lists bit for bit means rounding
 * each operation to float32 exactly where torch or numpy does. JavaScript numbers are float64; rounding a
 * float64 result of +, -, *, / on two float32 operands with Math.fround gives the correctly rounded
 * float32 result (float64 has more than 2*24+2 bits), so these helpers only need care for the fused
 * multiply-add, whose exact result can need more than 53 bits.
 */

const f32 = Math.fround;

/** float32 a + b. */
export function addF32(a: number, b: number): number {
  return f32(f32(a) + f32(b));
}

/** float32 a - b. */
export function subF32(a: number, b: number): number {
  return f32(f32(a) - f32(b));
}

/** float32 a * b. */
export function mulF32(a: number, b: number): number {
  return f32(f32(a) * f32(b));
}

/** float32 a / b. */
export function divF32(a: number, b: number): number {
  return f32(f32(a) / f32(b));
}

/**
 * float32 fma(a, b, c) = round_f32(a*b + c) with a single rounding, as the C++ compiler emits for
 * `c + a * b` in PyTorch's AVX2/AVX-512 CPU kernels (GCC contracts it to vfmadd). a*b of two float32 values
 * is exact in float64 (48 significant bits); the sum is computed with TwoSum so that the one case where
 * rounding first to float64 and then to float32 differs from a single rounding (the float64 sum lands
 * exactly on a float32 midpoint while the exact sum does not) is decided by the sign of the lost part.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = f32(a) * f32(b);
  const cc = f32(c);
  const s = p + cc;
  // TwoSum (Knuth): s + err == p + cc exactly.
  const bv = s - p;
  const err = (p - (s - bv)) + (cc - bv);
  const r = f32(s);
  if (err === 0 || r === s) return r;
  const other = nextF32Toward(r, s);
  if ((r + other) / 2 !== s) return r; // not a midpoint: float64 rounding could not change the side
  // s is exactly a float32 midpoint but the exact value lies beyond it on err's side.
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The float32 neighbour of the float32 value `x` in the direction of `toward` (x !== toward, both finite). */
export function nextF32Toward(x: number, toward: number): number {
  if (x === 0) return toward > 0 ? 1.401298464324817e-45 : -1.401298464324817e-45;
  scratch[0] = x;
  const awayFromZero = (toward > x) === (x > 0);
  scratchBits[0] += awayFromZero ? 1 : -1;
  return scratch[0];
}
