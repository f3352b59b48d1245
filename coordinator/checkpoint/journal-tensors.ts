/**
 * A journal entry as JSON text with its Float32Arrays lifted out (the checkpoint journal stores the
 * tensors beside the text, base64), and back. Non-finite numbers survive ({"$num": "NaN"}), which
 * JSON alone cannot hold.
 */
export function liftTensors(value: unknown): { readonly json: string; readonly tensors: Float32Array[] } {
  const tensors: Float32Array[] = [];
  return { json: JSON.stringify(lift(value, tensors)), tensors };
}

export function lowerTensors(json: string, tensors: readonly Float32Array[]): unknown {
  return lower(JSON.parse(json), tensors);
}

/** Replaces each Float32Array by {"$f32": index}, and non-finite numbers by {"$num": "NaN"}. */
function lift(value: unknown, tensors: Float32Array[]): unknown {
  if (value instanceof Float32Array) {
    tensors.push(value);
    return { $f32: tensors.length - 1 };
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value : { $num: String(value) };
  // The journal is the coordinator's own data: anything else here is a bug, not bad input.
  if (typeof value === 'bigint' || ArrayBuffer.isView(value)) throw new TypeError(`${typeof value === 'bigint' ? 'bigint' : value.constructor.name} has no journal form; only Float32Array tensors are kept`);
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
      if (tensor === undefined) throw new RangeError(`refers to tensor ${record.$f32}, but the line holds ${tensors.length}`);
      return tensor;
    }
    if (typeof record.$num === 'string') return Number(record.$num);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(record)) out[k] = lower(v, tensors);
    return out;
  }
  return value;
}
