/**
 * The analytic model is the yardstick the samplers and the search are measured against, so its own
 * outputs are checked against independent derivations: the epsilon output against a finite-difference
 * score of the closed-form noised density (Tweedie), x0hat against a naive per-mode posterior, and the
 * v / flow outputs against their algebraic identities.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AnalyticModelConfigError,
  ANALYTIC_GMM_DEFAULTS,
  createAnalyticModel,
  GaussianMixture,
  LOG_DENSITY,
  RARE_MODE_AFFINITY,
  RARE_MODE_HIT,
  seededUniform,
  type AnalyticGmmModel,
} from '../worker/models/analytic-gmm.js';
import type { StepTime } from '../samplers/sampler.js';

const vp = (alphaBar: number): StepTime => ({ timestep: 0, signalScale: Math.sqrt(alphaBar), noiseScale: Math.sqrt(1 - alphaBar) });
const flow = (sigma: number): StepTime => ({ timestep: sigma * 1000, signalScale: 1 - sigma, noiseScale: sigma });

/** Points worth probing at time (a, b): draws from the noised marginal, points between two modes, far points. */
function probePoints(model: AnalyticGmmModel, time: StepTime, n: number, seed: number): Float32Array {
  const { dimension: d, centres } = model.mixture;
  const a = time.signalScale;
  const b = time.noiseScale;
  const rng = seededUniform(seed);
  const x = model.sampleData(n, rng);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < d; i++) {
      const z = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
      x[j * d + i] = a * x[j * d + i] + b * z;
    }
  }
  // Midpoints between mode 0 and mode 1 at this noise level, nudged: responsibilities are mixed there,
  // which is where a wrong weight or normaliser would show.
  for (let i = 0; i < d; i++) x[i] = (a * (centres[i] + centres[d + i])) / 2 + 0.01 * i;
  // A point far from everything: naive exp() would underflow every mode to 0 here.
  for (let i = 0; i < d; i++) x[d + i] = 20;
  return x;
}

/** d/dx_i log p_t by a 5-point central difference in double (error O(h^4)). */
function fdScore(mixture: GaussianMixture, x: Float64Array, a: number, b: number, i: number): number {
  const h = 1e-4;
  const at = (delta: number): number => {
    const keep = x[i];
    x[i] = keep + delta;
    const value = mixture.noisedLogDensity(x, a, b);
    x[i] = keep;
    return value;
  };
  return (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h);
}

/** E[x0 | x_t] straight from the definition, one mode at a time (no shared-term simplification). */
function naivePosteriorMean(mixture: GaussianMixture, x: ArrayLike<number>, offset: number, a: number, b: number): Float64Array {
  const { dimension: d, modes: K, modeStd: s, centres, weights } = mixture;
  const v = a * a * s * s + b * b;
  const logs = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let sq = 0;
    for (let i = 0; i < d; i++) sq += (x[offset + i] - a * centres[k * d + i]) ** 2;
    logs[k] = Math.log(weights[k]) - sq / (2 * v) - (d / 2) * Math.log(2 * Math.PI * v);
  }
  const max = Math.max(...logs);
  const r = logs.map((l) => Math.exp(l - max));
  const total = r.reduce((p, q) => p + q, 0);
  const mean = new Float64Array(d);
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < d; i++) {
      const perMode = centres[k * d + i] + ((a * s * s) / v) * (x[offset + i] - a * centres[k * d + i]);
      mean[i] += (r[k] / total) * perMode;
    }
  }
  return mean;
}

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Number.isFinite(actual), `${what}: not finite (${actual})`);
  assert.ok(Math.abs(actual - expected) <= tol * (1 + Math.abs(expected)), `${what}: ${actual} vs ${expected} (tol ${tol})`);
}

const TIMES: readonly [string, StepTime][] = [
  ['vp alpha_bar 0.999', vp(0.999)],
  ['vp alpha_bar 0.9', vp(0.9)],
  ['vp alpha_bar 0.5', vp(0.5)],
  ['vp alpha_bar 0.005', vp(0.005)],
  ['flow sigma 0.02', flow(0.02)],
  ['flow sigma 0.5', flow(0.5)],
  ['flow sigma 0.97', flow(0.97)],
];

describe('analytic GMM denoiser', () => {
  it('epsilon output is -b times the score of the noised mixture (finite differences)', () => {
    const model = createAnalyticModel('analytic:gmm');
    const d = model.mixture.dimension;
    const n = 12;
    const out = new Float32Array(n * d);
    for (const [label, time] of TIMES) {
      const x = probePoints(model, time, n, 11);
      model.denoiser.predict(x, n, time, out);
      for (let j = 0; j < n; j++) {
        const xd = Float64Array.from(x.subarray(j * d, (j + 1) * d)); // the float32 point the model saw
        for (let i = 0; i < d; i++) {
          const expected = -time.noiseScale * fdScore(model.mixture, xd, time.signalScale, time.noiseScale, i);
          close(out[j * d + i], expected, 1e-6, `${label} point ${j} coord ${i}`);
        }
      }
    }
  });

  it('implied x0 estimate equals the per-mode posterior mean; v and flow outputs obey their identities', () => {
    const eps = createAnalyticModel('analytic:gmm?prediction=epsilon');
    const vModel = createAnalyticModel('analytic:gmm?prediction=v_prediction');
    const flowModel = createAnalyticModel('analytic:gmm?prediction=flow');
    const d = eps.mixture.dimension;
    const n = 12;
    const e = new Float32Array(n * d);
    const o = new Float32Array(n * d);
    for (const [label, time] of TIMES) {
      const a = time.signalScale;
      const b = time.noiseScale;
      const x = probePoints(eps, time, n, 23);
      eps.denoiser.predict(x, n, time, e);
      const other = label.startsWith('vp') ? vModel : flowModel;
      other.denoiser.predict(x, n, time, o);
      for (let j = 0; j < n; j++) {
        const x0 = naivePosteriorMean(eps.mixture, x, j * d, a, b);
        for (let i = 0; i < d; i++) {
          const at = j * d + i;
          // x = a x0hat + b epshat must hold for the pair the model implies (checked without dividing by a,
          // which at a = 0.03 would amplify the float32 rounding of the output 30-fold).
          close(a * x0[i] + b * e[at], x[at], 2e-6, `${label} x = a x0 + b eps, point ${j} coord ${i}`);
          if (other === vModel) {
            close(o[at], a * e[at] - b * x0[i], 2e-6, `${label} v = a eps - b x0, point ${j}`);
            close(a * x[at] - b * o[at], x0[i], 2e-6, `${label} x0 = a x - b v, point ${j}`);
          } else {
            close(o[at], e[at] - x0[i], 2e-6, `${label} u = eps - x0, point ${j}`);
            close(x[at] - b * o[at], x0[i], 2e-6, `${label} x0 = x - sigma u, point ${j}`);
          }
        }
      }
    }
  });

  it('stays finite and converges as b -> 0 and as a -> 0', () => {
    const model = createAnalyticModel('analytic:gmm?prediction=flow');
    const epsModel = createAnalyticModel('analytic:gmm');
    const d = model.mixture.dimension;
    const x = probePoints(model, flow(0), 3, 5); // a sample, a between-modes point, a far point
    const u = new Float32Array(3 * d);
    const e = new Float32Array(3 * d);
    for (const sigma of [1e-3, 1e-6, 1e-12, 0]) {
      model.denoiser.predict(x, 3, flow(sigma), u);
      epsModel.denoiser.predict(x, 3, flow(sigma), e);
      for (let at = 0; at < 3 * d; at++) {
        assert.ok(Number.isFinite(u[at]) && Number.isFinite(e[at]), `sigma ${sigma}: non-finite output`);
        // eps = (b / v) g: shrinks linearly with b, exactly 0 at b = 0.
        assert.ok(Math.abs(e[at]) <= sigma * 1e4, `sigma ${sigma}: eps ${e[at]} does not vanish`);
        if (sigma === 0) assert.ok(e[at] === 0, `sigma 0: eps ${e[at]} is not 0`); // +0 or -0
        // x0hat -> x / a = x: the clean sample is its own estimate, so u = eps - x0hat -> -x.
        close(u[at], -x[at], Math.max(1e-6, sigma * 1e4), `sigma ${sigma}: flow velocity`);
      }
    }
    // a -> 0 (pure noise): r_k -> w_k, x0hat -> sum_k w_k mu_k, eps -> x.
    const x0Prior = new Float64Array(d);
    model.mixture.weights.forEach((w, k) => {
      for (let i = 0; i < d; i++) x0Prior[i] += w * model.mixture.centres[k * d + i];
    });
    model.denoiser.predict(x, 3, flow(1), u);
    for (let at = 0; at < 3 * d; at++) close(u[at], x[at] - x0Prior[at % d], 1e-6, 'sigma 1: flow velocity');
  });

  it('batches back to back, and out may alias the input', () => {
    const model = createAnalyticModel('analytic:gmm?prediction=v_prediction');
    const d = model.mixture.dimension;
    const n = 7;
    const time = vp(0.3);
    const x = probePoints(model, time, n, 99);
    const batched = new Float32Array(n * d);
    model.denoiser.predict(x, n, time, batched);
    const one = new Float32Array(d);
    for (let j = 0; j < n; j++) {
      model.denoiser.predict(x.subarray(j * d, (j + 1) * d), 1, time, one);
      assert.deepEqual(Array.from(one), Array.from(batched.subarray(j * d, (j + 1) * d)));
    }
    const inPlace = x.slice();
    model.denoiser.predict(inPlace, n, time, inPlace);
    assert.deepEqual(Array.from(inPlace), Array.from(batched));
    assert.equal(model.denoiser.forwardPassesPerNfe, 1);
    assert.deepEqual(model.denoiser.latentShape, [d]);
    assert.throws(() => model.denoiser.predict(x, n + 1, time, batched), RangeError);
    assert.throws(() => model.denoiser.predict(x, n, { timestep: 0, signalScale: 0, noiseScale: 0 }, batched), /both 0/);
    assert.throws(() => model.denoiser.predict(x, n, { timestep: 0, signalScale: Number.NaN, noiseScale: 1 }, batched), RangeError);
  });

  it('decodes by identity', () => {
    const model = createAnalyticModel('analytic:gmm?dimension=3');
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const out = new Float32Array(6);
    model.decoder.decode(x, 2, out);
    assert.deepEqual(Array.from(out), [1, 2, 3, 4, 5, 6]);
    assert.equal(model.decoder.sampleSize, 3);
    assert.deepEqual(model.decoder.sampleShape, [3]);
  });
});

describe('analytic GMM data distribution', () => {
  it('draws centres deterministically from the seed, well separated', () => {
    const a = createAnalyticModel({ seed: 7 });
    const b = createAnalyticModel('analytic:gmm?seed=7');
    const c = createAnalyticModel({ seed: 8 });
    assert.deepEqual(Array.from(a.mixture.centres), Array.from(b.mixture.centres));
    assert.notDeepEqual(Array.from(a.mixture.centres), Array.from(c.mixture.centres));
    // With the defaults, modes are > 10 std apart: classification of a sample is unambiguous.
    assert.ok(a.mixture.minCentreDistanceInStd > 10, `centres only ${a.mixture.minCentreDistanceInStd} std apart`);
    assert.deepEqual(a.modeWeights(), [0.05, 0.95 / 3, 0.95 / 3, 0.95 / 3]);
  });

  it('sampleData matches the weights and the spread, and classifyMode recovers the mode', () => {
    const model = createAnalyticModel('analytic:gmm');
    const { dimension: d, modeStd: s, centres } = model.mixture;
    const n = 20000;
    const modes = new Int32Array(n);
    const x = model.sampleData(n, seededUniform(3), modes);
    const counts = [0, 0, 0, 0];
    let sq = 0;
    for (let j = 0; j < n; j++) {
      counts[modes[j]]++;
      assert.equal(model.classifyMode(x, j * d), modes[j]);
      for (let i = 0; i < d; i++) sq += (x[j * d + i] - centres[modes[j] * d + i]) ** 2;
    }
    model.modeWeights().forEach((w, k) => {
      const se = Math.sqrt((w * (1 - w)) / n);
      assert.ok(Math.abs(counts[k] / n - w) < 5 * se, `mode ${k}: ${counts[k] / n} vs ${w}`);
    });
    // mean |x - mu|^2 = d s^2, relative standard error sqrt(2 / (d n)) = 0.0035.
    close(sq / n / (d * s * s), 1, 0.02, 'spread');
  });

  it('log-density is normalised (1-D grid integral) and matches the mixture formula', () => {
    const model = createAnalyticModel('analytic:gmm?dimension=1&modes=2&rareWeight=0.2');
    let integral = 0;
    const h = 1e-3;
    for (let x = -6; x <= 6; x += h) integral += Math.exp(model.mixture.logDensity([x])) * h;
    close(integral, 1, 1e-6, 'integral of p');
    const [m0, m1] = [model.mixture.centres[0], model.mixture.centres[1]];
    const s = model.mixture.modeStd;
    const direct = (x: number): number =>
      Math.log(0.2 * Math.exp(-((x - m0) ** 2) / (2 * s * s)) + 0.8 * Math.exp(-((x - m1) ** 2) / (2 * s * s))) - 0.5 * Math.log(2 * Math.PI * s * s);
    for (const x of [-1, 0, 0.3, 2]) close(model.mixture.logDensity([x]), direct(x), 1e-12, `log p(${x})`);
  });
});

describe('analytic GMM rewards', () => {
  const model = createAnalyticModel('analytic:gmm');
  const d = model.mixture.dimension;

  it('lists the guidance reward first, then the held-out metrics', () => {
    assert.deepEqual(model.rewards.map((r) => r.name), [RARE_MODE_AFFINITY, RARE_MODE_HIT, LOG_DENSITY]);
    assert.equal(model.rewards[0], model.guidance);
  });

  it('the target point scores the maximum, inside the rare mode', () => {
    const target = Float32Array.from(model.guidance.target);
    const out = new Float64Array(1);
    model.guidance.score(target, 1, out);
    close(out[0], model.bestGuidanceReward, 1e-12, 'reward at target');
    assert.equal(model.bestGuidanceReward, 0);
    assert.equal(model.classifyMode(target), model.rareMode);
    // One mode-std from the rare centre.
    const mu = model.mixture.centre(model.rareMode);
    close(Math.hypot(...Array.from(mu, (m, i) => m - model.guidance.target[i])), model.mixture.modeStd, 1e-12, '|c - mu_rare|');
    const rng = seededUniform(1);
    for (let t = 0; t < 100; t++) {
      const y = target.map((c) => c + 0.1 * (rng() - 0.5));
      model.guidance.score(y, 1, out);
      assert.ok(out[0] < 0);
    }
  });

  it('rare-mode samples beat common-mode samples on average, and the metrics agree', () => {
    const n = 20000;
    const modes = new Int32Array(n);
    const x = model.sampleData(n, seededUniform(17), modes);
    const [affinity, hit, logDensity] = model.rewards.map((r) => {
      const out = new Float64Array(n);
      r.score(x, n, out);
      return out;
    });
    const sum = new Float64Array(4);
    const count = new Float64Array(4);
    for (let j = 0; j < n; j++) {
      sum[modes[j]] += affinity[j];
      count[modes[j]]++;
      assert.equal(hit[j], modes[j] === model.rareMode ? 1 : 0);
      close(logDensity[j], model.mixture.logDensity(x, j * d), 0, 'log-density metric');
    }
    const mean = Array.from(sum, (v, k) => v / count[k]);
    for (let k = 1; k < 4; k++) assert.ok(mean[0] > mean[k] + 0.5, `rare mode ${mean[0]} vs mode ${k} ${mean[k]}`);
    // And each matches its closed form -(|mu_k - c|^2 + d s^2) / d.
    for (let k = 0; k < 4; k++) close(mean[k], model.guidance.expectedForMode(k), 0.02, `mean reward of mode ${k}`);
  });
});

describe('analytic model config', () => {
  it('parses specs and uses the canonical spec as id', () => {
    const model = createAnalyticModel('analytic:gmm');
    assert.deepEqual({ ...model.config }, { ...ANALYTIC_GMM_DEFAULTS });
    const custom = createAnalyticModel('analytic:gmm?dimension=16&modes=5&prediction=flow');
    assert.equal(custom.config.dimension, 16);
    assert.equal(custom.config.modes, 5);
    assert.equal(custom.config.prediction, 'flow');
    assert.equal(custom.denoiser.prediction, 'flow');
    assert.equal(custom.id, 'analytic:gmm?dimension=16&modes=5&rareWeight=0.05&modeStd=0.25&separation=3&seed=0&prediction=flow');
    assert.equal(createAnalyticModel(custom.id).id, custom.id);
    assert.deepEqual(Array.from(createAnalyticModel({ dimension: 16, modes: 5, prediction: 'flow' }).mixture.centres), Array.from(custom.mixture.centres));
    assert.equal(createAnalyticModel('analytic:gmm?rareWeight=1e-3&modeStd=.5&').config.rareWeight, 0.001);
  });

  const bad: readonly [string, string, RegExp][] = [
    ['analytic:gmm?dimensions=4', 'dimensions', /unknown key.*dimension, modes/],
    ['analytic:gmm?dimension=0', 'dimension', /integer in \[1, 8388608\]/],
    ['analytic:gmm?dimension=2.5', 'dimension', /integer/],
    ['analytic:gmm?dimension=', 'dimension', /a value/],
    ['analytic:gmm?dimension=8&dimension=9', 'dimension', /repeats/],
    ['analytic:gmm?modes=1', 'modes', /\[2, 1024\]/],
    ['analytic:gmm?dimension=1&modes=3', 'modes', /at most 2/],
    ['analytic:gmm?rareWeight=0.3', 'rareWeight', /\(0, 0.25\]/],
    ['analytic:gmm?rareWeight=0', 'rareWeight', /\(0, /],
    ['analytic:gmm?modeStd=-1', 'modeStd', /> 0/],
    ['analytic:gmm?separation=far', 'separation', /finite number > 0, got "far"/],
    ['analytic:gmm?seed=-1', 'seed', /integer/],
    ['analytic:gmm?seed=0x10', 'seed', /integer/],
    ['analytic:gmm?prediction=sample', 'prediction', /epsilon, v_prediction, flow/],
    ['analytic:gmm?modes=%E0', 'modes', /percent-encoded/],
    ['analytic:gmn', 'spec', /"analytic:gmm"/],
  ];
  for (const [spec, field, message] of bad) {
    it(`rejects ${spec} naming ${field}`, () => {
      assert.throws(
        () => createAnalyticModel(spec),
        (error: unknown) => error instanceof AnalyticModelConfigError && error.field === field && message.test(error.message),
      );
    });
  }

  it('rejects bad config objects', () => {
    assert.throws(() => createAnalyticModel({ modes: 3, rareWeight: 0.5 }), (e: unknown) => e instanceof AnalyticModelConfigError && e.field === 'rareWeight');
    assert.throws(() => createAnalyticModel({ bogus: 1 } as never), (e: unknown) => e instanceof AnalyticModelConfigError && e.field === 'bogus');
    assert.throws(() => createAnalyticModel({ modeStd: Number.POSITIVE_INFINITY }), (e: unknown) => e instanceof AnalyticModelConfigError && e.field === 'modeStd');
  });
});
