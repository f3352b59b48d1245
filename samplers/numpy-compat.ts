/**
 * The few numpy constructors diffusers' set_timesteps functions use, reproduced operation for operation so
 * integer timesteps come out identical (a value like 679.9999999 truncates to 679, and numpy's rounding
 * decides which way a .5 goes).
 */

/**
 * numpy.linspace(start, stop, num) in float64 (numpy/core/function_base.py): step = (stop - start) / div,
 * y[i] = i * step + start, and with endpoint the last element is set to `stop` exactly.
 */
export function npLinspace(start: number, stop: number, num: number, endpoint = true): Float64Array {
  const out = new Float64Array(num);
  if (num === 0) return out;
  const div = endpoint ? num - 1 : num;
  const delta = stop - start;
  if (div > 0) {
    const step = delta / div;
    if (step === 0) {
      for (let i = 0; i < num; i++) out[i] = ((i / div) * delta) + start;
    } else {
      for (let i = 0; i < num; i++) out[i] = i * step + start;
    }
  } else {
    // num == 1 with endpoint: numpy yields [start]; step is NaN but only index 0 exists.
    out[0] = start;
  }
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/**
 * numpy.arange(start, stop, step) for float64 arguments (PyArray_ArangeObj): the length is
 * ceil((stop - start) / step), and the values are filled from the first two elements, so element i is
 * start + i * ((start + step) - start), which is not always start + i * step.
 */
export function npArange(start: number, stop: number, step: number): Float64Array {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(length);
  if (length === 0) return out;
  const delta = (start + step) - start;
  for (let i = 0; i < length; i++) out[i] = start + i * delta;
  return out;
}

/** numpy.round / numpy.rint for float64: round half to even. */
export function npRint(x: number): number {
  const r = Math.round(x); // rounds half up (toward +inf)
  if (r - x === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

/** ndarray.astype(np.int64) from float64: truncation toward zero (C cast). */
export function npTruncToInt(x: number): number {
  return Math.trunc(x);
}
