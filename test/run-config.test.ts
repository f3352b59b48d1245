import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, mergeRunConfig, parseRunConfig, resolveRunConfig } from '../config/resolve-run-config.js';
import { PRESETS } from '../config/presets.js';

const resolve = (input: unknown) => resolveRunConfig(parseRunConfig(input, 'test config'), 'test config');

function rejects(input: unknown, field: string, message?: RegExp): void {
  assert.throws(
    () => resolve(input),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.equal(error.field, field, `wrong field in: ${error.message}`);
      if (message) assert.match(error.message, message);
      assert.match(error.message, /test config/, 'the message says where the bad value came from');
      return true;
    },
  );
}

describe('run configuration', () => {
  it('defaults to the SD2.1 preset at its own budget, all three methods planned to 5000 NFEs', () => {
    const plan = resolve({});
    assert.equal(plan.preset, 'sd21');
    assert.equal(plan.method, 'evosearch');
    assert.equal(plan.budgetNfe, 5000);
    assert.deepEqual(plan.evosearch.populationSchedule, [42, 26, 26, 26, 30]);
    assert.equal(plan.evosearch.elites, 5);
    assert.equal(plan.bestOfN.n, 100);
    assert.equal(plan.particles.particles, 100);
    for (const spend of Object.values(plan.planned)) assert.equal(spend.nfe, 5000);
    assert.equal(plan.sampler.kind, 'ddim');
  });

  it('takes the FLUX and Wan presets with their flow SDE sampler and schedules', () => {
    const flux = resolve({ preset: 'flux' });
    assert.equal(flux.sampler.kind, 'flow-sde-dpmpp');
    assert.equal(flux.budgetNfe, 1465);
    assert.deepEqual(flux.evosearch.evolutionSchedule, PRESETS.flux.evosearch.evolutionSchedule);
    const wan = resolve({ preset: 'wan', budgetNfe: 2000 });
    assert.equal(wan.planned.evosearch.nfe, 2000);
    assert.equal(wan.planned['best-of-n'].nfe, 2000);
  });

  it('plans every method to the same budget within one trajectory', () => {
    for (const budgetNfe of [777, 1234, 5000, 9999, 31000]) {
      const plan = resolve({ budgetNfe });
      for (const [method, spend] of Object.entries(plan.planned)) {
        assert.ok(spend.nfe <= budgetNfe && budgetNfe - spend.nfe < 50, `${method} at ${budgetNfe}: ${spend.nfe}`);
      }
    }
  });

  it('plans a baseline at a budget too small for EvoSearch, and says why EvoSearch is not possible', () => {
    const plan = resolveRunConfig({ method: 'best-of-n', budgetNfe: 50 });
    assert.equal(plan.bestOfN.n, 1);
    assert.match(plan.unavailable.evosearch ?? '', /too small for the evolution schedule/);
    assert.equal(plan.unavailable['best-of-n'], undefined);
    assert.throws(() => resolveRunConfig({ method: 'evosearch', budgetNfe: 50 }), (e: unknown) => e instanceof ConfigError && e.field === 'budgetNfe');
    assert.deepEqual(resolveRunConfig({}).unavailable, {});
  });

  it('rescales the preset schedule to another step count', () => {
    const plan = resolve({ sampler: { steps: 25 } });
    assert.deepEqual(plan.evosearch.evolutionSchedule, [0, 10, 15, 20]);
    assert.equal(plan.particles.resampling?.interval, 10);
  });

  it('keeps the noise schedule when switching DDIM to DDPM', () => {
    const plan = resolve({ sampler: { kind: 'ddpm' }, method: 'best-of-n' });
    assert.equal(plan.sampler.kind, 'ddpm');
    assert.equal((plan.sampler as { beta_schedule?: string }).beta_schedule, 'scaled_linear');
  });

  it('merges layers one level deep, later ones winning', () => {
    const merged = mergeRunConfig({ seed: 1, evosearch: { elites: 3, mutationRate: 0.3 } }, { evosearch: { elites: 4 } });
    assert.deepEqual(merged, { seed: 1, evosearch: { elites: 4, mutationRate: 0.3 } });
  });

  describe('bad input names the field and what is allowed', () => {
    it('unknown keys, at any depth', () => {
      rejects({ metod: 'evosearch' }, '(top level)', /metod/);
      rejects({ evosearch: { elite: 3 } }, 'evosearch', /elite/);
    });
    it('values out of their domain', () => {
      rejects({ method: 'beam' }, 'method', /evosearch|best-of-n|particles/);
      rejects({ preset: 'sdxl' }, 'preset', /sd21/);
      rejects({ seed: -1 }, 'seed');
      rejects({ seed: 1.5 }, 'seed');
      rejects({ budgetNfe: 0 }, 'budgetNfe');
      rejects({ evosearch: { mutationRate: 1 } }, 'evosearch.mutationRate');
      rejects({ sampler: { eta: 2 } }, 'sampler.eta');
      rejects({ particles: { potential: 'min' } }, 'particles.potential', /max/);
      rejects({ workers: 0 }, 'workers');
      rejects({ evosearch: { populationSchedule: [10, 'x'] } }, 'evosearch.populationSchedule.1');
    });
    it('a budget too small for the schedule', () => {
      rejects({ budgetNfe: 100 }, 'budgetNfe', /too small.*160/);
      rejects({ budgetNfe: 20 }, 'budgetNfe', /one trajectory/);
    });
    it('contradictory settings', () => {
      rejects({ budgetNfe: 3000, evosearch: { populationSchedule: [42, 26, 26, 26, 30] } }, 'budgetNfe', /contradicts/);
      rejects({ evosearch: { populationSchedule: [10, 10] } }, 'evosearch.populationSchedule', /needs 5 entries/);
      rejects({ evosearch: { elites: 40 } }, 'evosearch.elites', /do not fit/);
      rejects({ evosearch: { evolutionSchedule: [0, 30, 20, 40] } }, 'evosearch.evolutionSchedule[2]', /strictly increasing/);
      rejects({ method: 'best-of-n', budgetNfe: 1000, bestOfN: { n: 30 } }, 'bestOfN.n', /over the budget/);
      rejects({ particles: { resampling: { interval: 0 } } }, 'particles.resampling.interval');
    });
    it('EvoSearch on a deterministic sampler', () => {
      rejects({ sampler: { eta: 0 } }, 'evosearch.evolutionSchedule[1]', /injects no noise/);
    });
    it('a preset schedule that cannot fit the step count', () => {
      rejects({ sampler: { steps: 3 } }, 'evosearch.evolutionSchedule', /explicit evolutionSchedule/);
    });
    it('a prompt for the analytic model, an unknown provider', () => {
      rejects({ prompt: 'a red circle' }, 'prompt', /takes no prompt/);
      rejects({ providers: ['cuda', 'tpu'] }, 'providers.1', /cpu/);
    });
    it('several model threads on WebGPU (one GPU device per process: they would crash it)', () => {
      rejects({ providers: ['webgpu', 'cpu'], workers: 2 }, 'workers', /one model thread per process.*--workers 1/);
      assert.equal(resolve({ providers: ['webgpu'] }).workers, 1, 'WebGPU defaults to one thread');
      assert.equal(resolve({ providers: ['webgpu'], workers: 1 }).workers, 1);
      assert.equal(resolve({ providers: ['webgpu'], workers: 2, workersAt: ['127.0.0.1:1', '127.0.0.1:2'] }).workersAt?.length, 2, 'remote workers are separate processes');
    });
    it('a sampler setting the sampler rejects', () => {
      rejects({ sampler: { kind: 'flow-sde-dpmpp', shift: 0 } }, 'sampler.shift');
    });
  });
});
