/**
 * Configuration of the analytic Gaussian-mixture model: the options a user may set, their documented
 * defaults, validation with errors that name the field and its allowed range,
 * and the `analytic:gmm?key=value&...` spec strings that select the model from a run config or the CLI.
 *
 * The canonical spec (every field spelled out, in a fixed order) is the model id, so two runs that
 * print the same id drew the same mode centres and face the same reward.
 */
import type { PredictionType } from '../../samplers/sampler.js';
import { describeValue } from '../../errors/describe-value.js';

export interface AnalyticGmmConfig {
  /** Dimension d of x0 (and of the latent: the decoder is the identity). */
  readonly dimension: number;
  /** Number K of mixture components. */
  readonly modes: number;
  /** Weight of the one rare mode (mode 0); the other K - 1 modes share 1 - rareWeight equally. */
  readonly rareWeight: number;
  /** Standard deviation s of every component, per coordinate: N(mu_k, s^2 I). */
  readonly modeStd: number;
  /**
   * Distance scale of the mode centres: the centres lie on the sphere of radius separation / sqrt(2),
   * so two centres at a right angle are `separation` apart.
   */
  readonly separation: number;
  /** Seed of the mode centres and of the reward's target offset (model construction, not search noise). */
  readonly seed: number;
  /** What the denoiser outputs. */
  readonly prediction: PredictionType;
}

/**
 * Defaults, and why:
 * - dimension 8: small enough that a test runs thousands of trajectories in a second, large enough that
 *   random centres on the sphere are nearly orthogonal (well separated) and the spread d*s^2 is a
 *   meaningful statistic.
 * - modes 4, rareWeight 0.05: one mode of 5% (Best-of-20 finds it about 64% of the time, so search has
 *   headroom to show) and three of ~31.7%.
 * - modeStd 0.25, separation 3: centres ~3 apart are ~12 s apart, so a sample's mode is unambiguous
 *   (the chance of crossing a midplane is ~1e-9 per sample) and classification is a clean statistic;
 *   |mu| = 3/sqrt(2) ~ 2.1 keeps E|x0|^2 (~5) on the scale of the N(0, I) noise (8).
 * - seed 0, prediction epsilon: the most common parameterisation (SD 1.x/2.x base).
 */
export const ANALYTIC_GMM_DEFAULTS: Readonly<AnalyticGmmConfig> = Object.freeze({
  dimension: 8,
  modes: 4,
  rareWeight: 0.05,
  modeStd: 0.25,
  separation: 3,
  seed: 0,
  prediction: 'epsilon',
});

/** The field names, in canonical (id) order. */
export const ANALYTIC_GMM_FIELDS: readonly (keyof AnalyticGmmConfig)[] = [
  'dimension',
  'modes',
  'rareWeight',
  'modeStd',
  'separation',
  'seed',
  'prediction',
];

const PREDICTIONS: readonly PredictionType[] = ['epsilon', 'v_prediction', 'flow'];

/** Bounds that keep the model meaningful; the dimension reaches video latents (Wan2.1 14B at 720p: 16×21×90×160 ≈ 4.8M floats), so fault trials can move Wan-sized states. */
const MAX_DIMENSION = 2 ** 23;
const MAX_MODES = 1024;

/** The spec prefix that selects this model. */
export const ANALYTIC_GMM_SPEC = 'analytic:gmm';

/** A config field (or spec) the analytic model cannot be built from. `field` names the culprit. */
export class AnalyticModelConfigError extends RangeError {
  override readonly name = 'AnalyticModelConfigError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    /** What would have been accepted, in words. */
    readonly allowed: string,
    options?: { cause?: unknown },
  ) {
    super(`analytic model: ${field} must be ${allowed}, got ${describeValue(value)}`, options);
  }
}


function integerIn(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new AnalyticModelConfigError(field, value, `an integer in [${min}, ${max}]`);
  }
  return value;
}

function positiveFinite(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new AnalyticModelConfigError(field, value, 'a finite number > 0');
  }
  return value;
}

/**
 * Fills defaults and validates. Unknown keys are rejected (a misspelt `rareweight` silently falling back
 * to the default would be worse than an error).
 */
export function resolveAnalyticGmmConfig(input: Partial<AnalyticGmmConfig> = {}): AnalyticGmmConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AnalyticModelConfigError('config', input, 'an object');
  }
  for (const key of Object.keys(input)) {
    if (!(ANALYTIC_GMM_FIELDS as readonly string[]).includes(key)) {
      throw new AnalyticModelConfigError(key, (input as Record<string, unknown>)[key], `not set: unknown field (known fields: ${ANALYTIC_GMM_FIELDS.join(', ')})`);
    }
  }
  const pick = <K extends keyof AnalyticGmmConfig>(key: K): unknown => (input[key] === undefined ? ANALYTIC_GMM_DEFAULTS[key] : input[key]);

  const dimension = integerIn('dimension', pick('dimension'), 1, MAX_DIMENSION);
  const modes = integerIn('modes', pick('modes'), 2, MAX_MODES);
  // The centres lie on a sphere; in one dimension that sphere is the two points +-R.
  if (dimension === 1 && modes > 2) throw new AnalyticModelConfigError('modes', modes, 'at most 2 when dimension = 1 (the centres lie on a sphere, which in 1-D is two points)');
  const rareWeight = pick('rareWeight');
  // The rare mode must not outweigh a common one: (1 - w) / (K - 1) >= w  <=>  w <= 1 / K.
  if (typeof rareWeight !== 'number' || !Number.isFinite(rareWeight) || rareWeight <= 0 || rareWeight > 1 / modes) {
    throw new AnalyticModelConfigError('rareWeight', rareWeight, `a number in (0, 1/modes] = (0, ${1 / modes}] for modes = ${modes}`);
  }
  const modeStd = positiveFinite('modeStd', pick('modeStd'));
  const separation = positiveFinite('separation', pick('separation'));
  const seed = integerIn('seed', pick('seed'), 0, Number.MAX_SAFE_INTEGER);
  const prediction = pick('prediction');
  if (typeof prediction !== 'string' || !(PREDICTIONS as readonly string[]).includes(prediction)) {
    throw new AnalyticModelConfigError('prediction', prediction, `one of ${PREDICTIONS.join(', ')}`);
  }
  return Object.freeze({ dimension, modes, rareWeight, modeStd, separation, seed, prediction: prediction as PredictionType });
}

/**
 * Parses `analytic:gmm` or `analytic:gmm?dimension=16&modes=5&prediction=flow`. Numbers must be plain
 * decimal literals (no empty values, no `0x`, no trailing junk: `Number('')` is 0 and would pass).
 * Unknown and repeated keys are errors.
 */
export function parseAnalyticModelSpec(spec: string): AnalyticGmmConfig {
  if (typeof spec !== 'string') throw new AnalyticModelConfigError('spec', spec, `a string "${ANALYTIC_GMM_SPEC}[?key=value&...]"`);
  const q = spec.indexOf('?');
  const head = q < 0 ? spec : spec.slice(0, q);
  if (head !== ANALYTIC_GMM_SPEC) {
    throw new AnalyticModelConfigError('spec', spec, `"${ANALYTIC_GMM_SPEC}" optionally followed by "?key=value&..." (keys: ${ANALYTIC_GMM_FIELDS.join(', ')})`);
  }
  const out: Record<string, unknown> = {};
  if (q >= 0) {
    const query = spec.slice(q + 1);
    for (const part of query.split('&')) {
      if (part === '') continue; // tolerate `?` alone and a trailing `&`
      const eq = part.indexOf('=');
      const key = eq < 0 ? part : part.slice(0, eq);
      const raw = eq < 0 ? undefined : decodeValue(key, part.slice(eq + 1));
      if (!(ANALYTIC_GMM_FIELDS as readonly string[]).includes(key)) {
        throw new AnalyticModelConfigError(key, raw, `not set: unknown key in "${spec}" (known keys: ${ANALYTIC_GMM_FIELDS.join(', ')})`);
      }
      if (key in out) throw new AnalyticModelConfigError(key, raw, `given once, but "${spec}" repeats it`);
      if (raw === undefined || raw === '') throw new AnalyticModelConfigError(key, raw, 'given a value (key=value)');
      out[key] = key === 'prediction' ? raw : parseNumber(raw);
    }
  }
  return resolveAnalyticGmmConfig(out as Partial<AnalyticGmmConfig>);
}

function decodeValue(key: string, encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch (cause) {
    throw new AnalyticModelConfigError(key, encoded, 'a valid percent-encoded value', { cause });
  }
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(raw: string): number | string {
  // An unparsable value is passed on as the string, so the field's own check reports it with its range.
  return DECIMAL.test(raw) ? Number(raw) : raw;
}

/** The canonical spec of a config: every field, in ANALYTIC_GMM_FIELDS order. Used as the model id. */
export function formatAnalyticModelSpec(config: AnalyticGmmConfig): string {
  const parts = ANALYTIC_GMM_FIELDS.map((key) => `${key}=${encodeURIComponent(String(config[key]))}`);
  return `${ANALYTIC_GMM_SPEC}?${parts.join('&')}`;
}
