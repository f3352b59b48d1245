/**
 * Readers for one field of a plain-object sampler config: apply diffusers' default when the key is absent
 * (undefined), otherwise check the type and range and throw a SamplerConfigError naming the key.
 * `null` is treated like absent, as diffusers' scheduler_config.json writes null for unset options.
 */
import { SamplerConfigError } from './sampler-config-error.js';

export type RawConfig = Readonly<Record<string, unknown>>;

function present(raw: RawConfig, key: string): boolean {
  return raw[key] !== undefined && raw[key] !== null;
}

export function readBool(raw: RawConfig, key: string, fallback: boolean): boolean {
  if (!present(raw, key)) return fallback;
  const v = raw[key];
  if (typeof v !== 'boolean') throw new SamplerConfigError(key, v, 'true or false');
  return v;
}

export interface NumberRange {
  readonly min?: number;
  readonly max?: number;
  /** Whether `min` itself is excluded. */
  readonly minExclusive?: boolean;
  readonly maxExclusive?: boolean;
  readonly integer?: boolean;
}

function describeRange(r: NumberRange): string {
  const kind = r.integer ? 'an integer' : 'a finite number';
  const parts: string[] = [];
  if (r.min !== undefined) parts.push(`${r.minExclusive ? '>' : '>='} ${r.min}`);
  if (r.max !== undefined) parts.push(`${r.maxExclusive ? '<' : '<='} ${r.max}`);
  return parts.length ? `${kind} ${parts.join(' and ')}` : kind;
}

export function checkNumber(key: string, v: unknown, r: NumberRange): number {
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (!r.integer || Number.isSafeInteger(v)) &&
    (r.min === undefined || (r.minExclusive ? v > r.min : v >= r.min)) &&
    (r.max === undefined || (r.maxExclusive ? v < r.max : v <= r.max));
  if (!ok) throw new SamplerConfigError(key, v, describeRange(r));
  return v as number;
}

export function readNumber(raw: RawConfig, key: string, fallback: number, r: NumberRange): number {
  if (!present(raw, key)) return fallback;
  return checkNumber(key, raw[key], r);
}

/** A number that has no default: undefined/null gives null. */
export function readOptionalNumber(raw: RawConfig, key: string, r: NumberRange): number | null {
  if (!present(raw, key)) return null;
  return checkNumber(key, raw[key], r);
}

export function readEnum<T extends string | number>(raw: RawConfig, key: string, allowed: readonly T[], fallback: T): T {
  if (!present(raw, key)) return fallback;
  const v = raw[key];
  if (!allowed.includes(v as T)) {
    throw new SamplerConfigError(key, v, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  return v as T;
}

/** Rejects keys a kind does not know, so a misspelt option fails instead of silently taking its default. */
export function rejectUnknownKeys(raw: RawConfig, kind: string, known: readonly string[]): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new SamplerConfigError(key, raw[key], `absent: it is not an option of kind '${kind}' (known: ${known.join(', ')})`);
    }
  }
}
