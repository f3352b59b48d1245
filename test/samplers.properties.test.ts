/**
 * Properties of the samplers that the reference vectors do not pin down: config validation (every bad
 * field is named), step-time misuse, the marginal each step must preserve (the basis of EvoSearch's
 * mutation strength), statelessness across a population, aliasing of `out` and `sample`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SamplerConfigError,
  SamplerStepError,
  calculateShift,
  createSampler,
  newSolverMemory,
  type Sampler,
  type SamplerConfig,
} from '../samplers/index.js';

/** Deterministic standard normals (Box-Muller on a small LCG): the tests need no RNG module. */
function normals(n: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  const uniform = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 1) / 4294967297;
  };
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

const SD_SCHEDULE = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false } as const;

function expectConfigError(config: unknown, field: string): void {
  assert.throws(
    () => createSampler(config as SamplerConfig),
    (err: unknown) => {
      assert.ok(err instanceof SamplerConfigError, `expected SamplerConfigError, got ${String(err)}`);
      assert.equal(err.field, field);
      assert.ok(err.message.includes(field), `message names the field: ${err.message}`);
      return true;
    },
  );
}

test('bad configs fail with a SamplerConfigError naming the field', () => {
  expectConfigError(null, 'sampler');
  expectConfigError({ kind: 'euler-a', steps: 10 }, 'kind');
  expectConfigError({ kind: 'ddim' }, 'steps');
  expectConfigError({ kind: 'ddim', steps: 0 }, 'steps');
  expectConfigError({ kind: 'ddim', steps: 2.5 }, 'steps');
  expectConfigError({ kind: 'ddim', steps: 1001 }, 'steps');
  expectConfigError({ kind: 'ddim', steps: 61, timestep_spacing: 'trailing' }, 'steps'); // numpy yields 62 timesteps
  expectConfigError({ kind: 'ddim', steps: 10, timestep_spacing: 'uniform' }, 'timestep_spacing');
  expectConfigError({ kind: 'ddim', steps: 10, timestep_spacng: 'leading' }, 'timestep_spacng');
  expectConfigError({ kind: 'ddim', steps: 10, beta_schedule: 'squaredcos_cap_v2' }, 'beta_schedule');
  expectConfigError({ kind: 'ddim', steps: 10, beta_end: 1.5 }, 'beta_end');
  expectConfigError({ kind: 'ddim', steps: 10, prediction_type: 'sample' }, 'prediction_type');
  expectConfigError({ kind: 'ddim', steps: 10, eta: 1.5 }, 'eta');
  expectConfigError({ kind: 'ddim', steps: 10, eta: Number.NaN }, 'eta');
  expectConfigError({ kind: 'ddim', steps: 10, steps_offset: 100 }, 'steps_offset');
  expectConfigError({ kind: 'ddim', steps: 10, thresholding: true }, 'thresholding');
  expectConfigError({ kind: 'ddim', steps: 10, clip_sample: 'yes' }, 'clip_sample');
  expectConfigError({ kind: 'ddpm', steps: 10, variance_type: 'fixed_large' }, 'variance_type');
  expectConfigError({ kind: 'ddpm', steps: 10, eta: 1 }, 'eta'); // eta is DDIM's
  expectConfigError({ kind: 'flow-euler', steps: 10, shift: 0 }, 'shift');
  expectConfigError({ kind: 'flow-euler', steps: 10, use_dynamic_shifting: true }, 'mu');
  expectConfigError({ kind: 'flow-euler', steps: 10, mu: 0.5 }, 'mu');
  expectConfigError({ kind: 'flow-euler', steps: 10, use_dynamic_shifting: true, mu: 0.5, image_seq_len: 4096 }, 'mu');
  expectConfigError({ kind: 'flow-euler', steps: 10, sigma_schedule: 'karras' }, 'sigma_schedule');
  expectConfigError({ kind: 'flow-sde-dpmpp', steps: 10, solver_order: 3 }, 'solver_order');
  expectConfigError({ kind: 'flow-sde-dpmpp', steps: 10, final_sigmas_type: 'sigma_min' }, 'final_sigmas_type');
  expectConfigError({ kind: 'flow-sde-dpmpp', steps: 10, algorithm_type: 'dpmsolver++' }, 'algorithm_type');
  expectConfigError({ kind: 'flow-sde-dpmpp', steps: 10, solver_type: 'bh2' }, 'solver_type');
});

test('the config error message lists the allowed values', () => {
  try {
    createSampler({ kind: 'ddim', steps: 10, timestep_spacing: 'uniform' } as unknown as SamplerConfig);
    assert.fail('should have thrown');
  } catch (err) {
    assert.ok(err instanceof SamplerConfigError);
    assert.match(err.message, /timestep_spacing must be one of "leading", "trailing", "linspace", got "uniform"/);
  }
});

test('defaults are diffusers class defaults', () => {
  const ddim = createSampler({ kind: 'ddim', steps: 10 });
  assert.deepEqual([...ddim.timesteps], [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]); // leading, steps_offset 0
  assert.equal(ddim.prediction, 'epsilon');
  assert.equal(ddim.isStochastic(0), false); // eta 0
  assert.equal(ddim.time(10).signalScale, 1); // set_alpha_to_one
  const sde = createSampler({ kind: 'flow-sde-dpmpp', steps: 10 });
  assert.equal(sde.prediction, 'flow');
  // numpy: linspace(1, 0, 11)[6] * 1000 = 399.99999999999994, truncated by astype(int64).
  assert.deepEqual([...sde.timesteps], [1000, 900, 800, 700, 600, 500, 399, 299, 199, 99]);
});

test('image_seq_len gives the same schedule as the mu calculate_shift derives from it', () => {
  const mu = calculateShift(4096, 256, 4096, 0.5, 1.15);
  assert.ok(Math.abs(mu - 1.15) < 1e-12);
  const a = createSampler({ kind: 'flow-euler', steps: 28, use_dynamic_shifting: true, image_seq_len: 4096, sigma_schedule: 'flux' });
  const b = createSampler({ kind: 'flow-euler', steps: 28, use_dynamic_shifting: true, mu, sigma_schedule: 'flux' });
  assert.deepEqual([...a.timesteps], [...b.timesteps]);
});

const STOCHASTIC: readonly SamplerConfig[] = [
  { kind: 'ddim', steps: 10, eta: 1, ...SD_SCHEDULE },
  { kind: 'ddpm', steps: 10, ...SD_SCHEDULE },
  { kind: 'flow-euler', steps: 10, shift: 3, stochastic_sampling: true },
  { kind: 'flow-sde-dpmpp', steps: 10, shift: 5 },
];

test('a stochastic step without noise throws SamplerStepError', () => {
  for (const config of STOCHASTIC) {
    const s = createSampler(config);
    const x = normals(16, 1);
    assert.equal(s.isStochastic(0), true, config.kind);
    assert.throws(() => s.step(0, x, normals(16, 2), null, new Float32Array(16), newSolverMemory()), SamplerStepError, config.kind);
  }
});

test('misuse at step time throws SamplerStepError', () => {
  const s = createSampler({ kind: 'flow-sde-dpmpp', steps: 10 });
  const x = normals(16, 1);
  const mem = newSolverMemory();
  assert.throws(() => s.step(10, x, x, x, new Float32Array(16), mem), SamplerStepError); // index N has no step
  assert.throws(() => s.step(-1, x, x, x, new Float32Array(16), mem), SamplerStepError);
  assert.throws(() => s.step(0, x, new Float32Array(8), x, new Float32Array(16), mem), SamplerStepError);
  assert.throws(() => s.step(0, x, x, x, new Float32Array(8), mem), SamplerStepError);
  assert.throws(() => s.time(11), SamplerStepError);
  assert.throws(() => s.noiseStd(10), SamplerStepError);
  assert.throws(() => s.step(1, x, x, x, new Float32Array(16), { previousX0: new Float32Array(8) }), SamplerStepError);
  assert.doesNotThrow(() => s.time(10));
});

test('the last SDE step is deterministic (sigma 0): noiseStd 0 and null noise accepted', () => {
  const s = createSampler({ kind: 'flow-sde-dpmpp', steps: 10, shift: 5 });
  assert.equal(s.noiseStd(9), 0);
  assert.equal(s.isStochastic(9), false);
  const x = normals(16, 3);
  const v = normals(16, 4);
  const out = new Float32Array(16);
  s.step(9, x, v, null, out, newSolverMemory());
  const x0 = new Float32Array(16);
  s.predictX0(9, x, v, x0);
  assert.deepEqual(out, x0); // x_N = x0
});

/** The model output an oracle that knows x0 gives at a point x = a x0 + b eps. */
function oracleOutput(s: Sampler, i: number, x: Float32Array, x0: Float32Array): Float32Array {
  const { signalScale: a, noiseScale: b } = s.time(i);
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const eps = (x[k] - a * x0[k]) / b;
    out[k] = s.prediction === 'epsilon' ? eps : s.prediction === 'v_prediction' ? a * eps - b * x0[k] : eps - x0[k];
  }
  return out;
}

const MARGINAL_CASES: readonly SamplerConfig[] = [
  { kind: 'ddim', steps: 25, eta: 0, set_alpha_to_one: true, steps_offset: 1, ...SD_SCHEDULE },
  { kind: 'ddim', steps: 25, eta: 1, steps_offset: 1, set_alpha_to_one: false, ...SD_SCHEDULE },
  { kind: 'ddim', steps: 20, eta: 0.5, prediction_type: 'v_prediction', ...SD_SCHEDULE },
  { kind: 'ddpm', steps: 20, steps_offset: 1, ...SD_SCHEDULE },
  { kind: 'ddpm', steps: 20, prediction_type: 'v_prediction', ...SD_SCHEDULE },
  { kind: 'flow-euler', steps: 20, shift: 3 },
  { kind: 'flow-euler', steps: 20, shift: 3, stochastic_sampling: true },
  { kind: 'flow-sde-dpmpp', steps: 50, shift: 1 },
  { kind: 'flow-sde-dpmpp', steps: 12, shift: 5, solver_type: 'heun' },
];

test('with an oracle model every step lands on time(i+1): x = a x0 + sqrt(b^2 - std^2) eps + std z', () => {
  // This is what makes noiseStd(i) the right mutation strength: the injected noise plus the carried noise
  // make up exactly the noise level time(i+1) states.
  for (const config of MARGINAL_CASES) {
    const s = createSampler(config);
    const n = 64;
    const x0 = normals(n, 11);
    const eps0 = normals(n, 12);
    let x = new Float32Array(n);
    const t0 = s.time(0);
    for (let k = 0; k < n; k++) x[k] = t0.signalScale * x0[k] + t0.noiseScale * eps0[k];
    const mem = newSolverMemory();
    for (let i = 0; i < s.steps; i++) {
      const { signalScale: a, noiseScale: b } = s.time(i);
      const eps = Float32Array.from(x, (v, k) => (v - a * x0[k]) / b);
      const z = normals(n, 100 + i);
      const out = new Float32Array(n);
      s.step(i, x, oracleOutput(s, i, x, x0), s.isStochastic(i) ? z : null, out, mem);
      const next = s.time(i + 1);
      const std = s.noiseStd(i);
      const carried = Math.sqrt(Math.max(0, next.noiseScale ** 2 - std ** 2));
      let worst = 0;
      for (let k = 0; k < n; k++) {
        const expected = next.signalScale * x0[k] + carried * eps[k] + (std > 0 ? std * z[k] : 0);
        worst = Math.max(worst, Math.abs(out[k] - expected));
      }
      assert.ok(worst < 2e-4, `${JSON.stringify(config)} step ${i}: off the marginal by ${worst}`);
      x = out;
    }
  }
});

test('predictX0 inverts every parameterisation', () => {
  for (const config of MARGINAL_CASES) {
    const s = createSampler(config);
    const n = 32;
    const x0 = normals(n, 21);
    const eps = normals(n, 22);
    for (let i = 0; i < s.steps; i++) {
      const { signalScale: a, noiseScale: b } = s.time(i);
      const x = Float32Array.from(x0, (v, k) => a * v + b * eps[k]);
      const out = new Float32Array(n);
      s.predictX0(i, x, oracleOutput(s, i, x, x0), out);
      for (let k = 0; k < n; k++) assert.ok(Math.abs(out[k] - x0[k]) < 1e-4 * (1 + 1 / a), `${config.kind} step ${i}`);
    }
  }
});

test('clip_sample clamps the x0 prediction to clip_sample_range', () => {
  const s = createSampler({ kind: 'ddim', steps: 10, clip_sample: true, clip_sample_range: 0.5 });
  const x = normals(64, 5).map((v) => v * 4);
  const out = new Float32Array(64);
  s.predictX0(3, x, normals(64, 6), out);
  assert.ok(out.every((v) => v >= -0.5 && v <= 0.5));
  assert.ok(out.some((v) => v === 0.5 || v === -0.5));
});

/** Runs a whole trajectory on one sampler; steps of other trajectories may be interleaved by the caller. */
function runInterleaved(s: Sampler, seeds: readonly number[], n: number): Float32Array[] {
  const xs = seeds.map((seed) => normals(n, seed));
  const mems = seeds.map(() => newSolverMemory());
  for (let i = 0; i < s.steps; i++) {
    seeds.forEach((seed, j) => {
      const noise = s.isStochastic(i) ? normals(n, seed * 1000 + i) : null;
      // A fixed fake network output that depends on the state, so the second-order term is non-zero.
      const v = Float32Array.from(xs[j], (x, k) => Math.sin(x + k + i));
      s.step(i, xs[j], v, noise, xs[j], mems[j]); // out aliases sample
    });
  }
  return xs;
}

test('one sampler serves a population: interleaved trajectories equal solo runs', () => {
  for (const config of STOCHASTIC) {
    const s = createSampler(config);
    const together = runInterleaved(s, [7, 8, 9], 24);
    const alone = [7, 8, 9].map((seed) => runInterleaved(createSampler(config), [seed], 24)[0]);
    assert.deepEqual(together, alone, config.kind);
  }
});

test('out may alias sample', () => {
  for (const config of [...STOCHASTIC, ...MARGINAL_CASES]) {
    const s = createSampler(config);
    const x = normals(32, 31);
    const m = normals(32, 32);
    const z = normals(32, 33);
    const separate = new Float32Array(32);
    const memA = newSolverMemory();
    const memB = newSolverMemory();
    s.step(0, x, m, z, separate, memA);
    const inPlace = Float32Array.from(x);
    s.step(0, inPlace, m, z, inPlace, memB);
    assert.deepEqual(inPlace, separate, config.kind);
  }
});

test('the SDE memory array is never written after it is stored (copies of a candidate may share it)', () => {
  const s = createSampler({ kind: 'flow-sde-dpmpp', steps: 10 });
  const mem = newSolverMemory();
  const x = normals(16, 41);
  s.step(0, x, normals(16, 42), normals(16, 43), x, mem);
  const stored = mem.previousX0;
  assert.ok(stored !== null);
  const snapshot = Float32Array.from(stored);
  const copy = { previousX0: stored };
  s.step(1, x, normals(16, 44), normals(16, 45), x, mem);
  assert.notEqual(mem.previousX0, stored);
  assert.deepEqual(stored, snapshot);
  assert.equal(copy.previousX0, stored);
});

test('SDE order choice: first order without history and on the last step, second order otherwise', () => {
  const s = createSampler({ kind: 'flow-sde-dpmpp', steps: 10, shift: 3 }) as Sampler & {
    usesSecondOrder(i: number, m: { previousX0: Float32Array | null }): boolean;
  };
  const some = { previousX0: new Float32Array(4) };
  assert.equal(s.usesSecondOrder(0, newSolverMemory()), false);
  assert.equal(s.usesSecondOrder(3, newSolverMemory()), false); // a trajectory without history starts at order 1
  assert.equal(s.usesSecondOrder(3, some), true);
  assert.equal(s.usesSecondOrder(9, some), false); // lower_order_final / final sigma zero
});
