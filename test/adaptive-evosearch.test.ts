import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AdaptiveEvoSearch, initialAdaptivePlan, type AdaptiveEvoSearchConfig } from '../search/adaptive-evosearch.js';
import { planRemaining, readSpread, remainingSpend } from '../search/adaptive-schedule.js';
import { evoSearchSpend } from '../search/planner.js';
import { SearchConfigError } from '../search/search-config-error.js';
import { hashReward, MetadataWorker } from '../search/metadata-worker.js';
import type { RolloutCommand } from '../proto/commands.js';
import { resolveRunConfig, ConfigError } from '../config/resolve-run-config.js';
import { describeSchedule } from '../config/describe-schedule.js';
import { workersWanted } from '../coordinator/service/workers-wanted.js';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';

/** The sd21 preset at N = 50 as the planner gives it at 4000 NFEs. */
const SD21: AdaptiveEvoSearchConfig = {
  steps: 50,
  budgetNfe: 4000,
  firstGeneration: 0,
  initialPopulation: 33,
  firstGap: 20,
  generationGap: 10,
  lastGeneration: 40,
  collapseRatio: 0.5,
  minPopulation: 21,
  elites: 5,
  mutationRate: 0.2,
  tournamentFraction: 0.9,
  archive: true,
  noiseStd: Array.from({ length: 50 }, (_, i) => 1 - i / 60),
  seed: 7,
};

type Reward = (id: number, from: number, kind: 'rollout' | 'final' | 'x0') => number;

function run(config: AdaptiveEvoSearchConfig, reward: Reward = (id) => hashReward(id, 3)) {
  const worker = new MetadataWorker(config.steps, reward);
  const machine = new AdaptiveEvoSearch(config);
  const done = worker.drive(machine);
  return { worker, machine, done };
}

/** Reward streams of many kinds: independent noise, a spread that shrinks with the step, constant, a few ties. */
function rewardStreams(seed: number): [string, Reward][] {
  return [
    ['uniform', (id) => hashReward(id, seed)],
    ['shrinking spread', (id, from) => 10 + hashReward(id, seed) * (1 - from / 50) ** 3],
    ['constant', () => 1],
    ['two levels', (id) => (hashReward(id, seed) < 0.5 ? 0 : 1)],
    ['heavy tail', (id) => 1 / (1e-3 + hashReward(id, seed))],
  ];
}

describe('adaptive EvoSearch machine', () => {
  it('never spends more than the budget, and ends within one final member of it, over many reward streams', () => {
    const configs: AdaptiveEvoSearchConfig[] = [
      SD21,
      { ...SD21, budgetNfe: 1000, initialPopulation: 8, minPopulation: 5, elites: 4 },
      { ...SD21, budgetNfe: 300, initialPopulation: 2, minPopulation: 2, elites: 0 },
      { ...SD21, budgetNfe: 4000, archive: false },
      // tiny-sd's schedule at N = 25 (E = 0 10 15 20).
      { ...SD21, steps: 25, noiseStd: SD21.noiseStd.slice(0, 25), budgetNfe: 2500, initialPopulation: 21, firstGap: 10, generationGap: 5, lastGeneration: 20, minPopulation: 13 },
      { ...SD21, steps: 25, noiseStd: SD21.noiseStd.slice(0, 25), budgetNfe: 500, initialPopulation: 4, firstGap: 10, generationGap: 5, lastGeneration: 20, minPopulation: 2, elites: 1 },
      // flux-like: the first generation after x_T.
      { ...SD21, firstGeneration: 5, firstGap: 15, budgetNfe: 1465, initialPopulation: 14, minPopulation: 7, elites: 3 },
    ];
    let searches = 0;
    for (const config of configs) {
      for (let seed = 0; seed < 12; seed++) {
        for (const [name, reward] of rewardStreams(seed)) {
          const { worker, machine } = run({ ...config, seed }, reward);
          const label = `${name}, seed ${seed}, budget ${config.budgetNfe}, N ${config.steps}`;
          assert.ok(worker.counters.nfe <= config.budgetNfe, `${label}: spent ${worker.counters.nfe}`);
          assert.equal(machine.plannedNfe(), worker.counters.nfe, `${label}: the machine's own count`);
          const lastStep = machine.decisions().at(-1)!.step;
          // The last plan fills the final population while a member fits: what is left buys none.
          assert.ok(config.budgetNfe - worker.counters.nfe < config.steps - lastStep, `${label}: ${config.budgetNfe - worker.counters.nfe} NFEs left after a last generation at ${lastStep}`);
          searches += 1;
        }
      }
    }
    assert.equal(searches, configs.length * 12 * 5);
  });

  it('is deterministic given the rewards: the same stream gives the same commands and decisions', () => {
    const reward: Reward = (id, from) => hashReward(id, 11) * (1 - from / 60);
    const a = run(SD21, reward);
    const b = run(SD21, reward);
    assert.deepEqual(a.worker.log, b.worker.log);
    assert.deepEqual(a.machine.decisions(), b.machine.decisions());
    assert.deepEqual(a.machine.candidates(), b.machine.candidates());
    const other = run(SD21, (id) => hashReward(id, 12));
    assert.notDeepEqual(other.worker.log, a.worker.log);
  });

  it('keeps exploring while the spread holds: the next generation sooner and larger', () => {
    const { machine, worker } = run(SD21, (id) => hashReward(id, 4));
    const [first, second] = machine.decisions();
    // The first decision has no earlier spread: it takes the fixed schedule's first jump.
    assert.equal(first!.reading.mode, 'explore');
    assert.equal(first!.plan.evolutionSchedule[0], 20);
    // Independent rewards keep their spread, so the next generation comes after Delta / 2.
    assert.equal(second!.reading.mode, 'explore');
    assert.equal(second!.plan.evolutionSchedule[0], 25);
    const rollouts = worker.log.filter((c): c is RolloutCommand => c.kind === 'rollout').map((r) => r.items[0]!.from);
    assert.deepEqual(rollouts.slice(0, 3), [0, 20, 25]);
    // Explore weights the next population double: it is larger than the final one it was planned with.
    const planned = second!.plan.populationSchedule;
    assert.ok(planned[0]! > planned.at(-1)!, `populations ${planned.join(', ')}`);
  });

  it('after a collapse without progress: fewer, later generations and a wider final population', () => {
    // The spread vanishes after the first generation and nothing improves on it.
    const reward: Reward = (id, from) => (from === 0 ? hashReward(id, 5) : 0.25);
    const { machine } = run(SD21, reward);
    const second = machine.decisions()[1]!;
    assert.equal(second.reading.mode, 'collapsed');
    assert.equal(second.reading.relativeSpread, 0);
    // From step 20, 2 Delta = 20 reaches e_end = 40: one generation left, then a final population weighted double.
    assert.deepEqual(second.plan.evolutionSchedule, [40]);
    const [next, final] = second.plan.populationSchedule;
    assert.ok(final! > next!, `populations ${second.plan.populationSchedule.join(', ')}`);
  });

  it('a collapsed spread that still improves the best plans steady: the base gap, even populations', () => {
    const reading = readSpread([1, 1.01, 1.02], 1, true, 0.5);
    assert.equal(reading.mode, 'steady');
    assert.equal(readSpread([1, 1.01, 1.02], 1, false, 0.5).mode, 'collapsed');
    assert.equal(readSpread([0, 1, 2], 1, false, 0.5).mode, 'explore');
    assert.equal(readSpread([3, 3], undefined, true, 0.5).relativeSpread, 0, 'a flat first generation gives nothing to compare with');
  });

  it('plans the rest with the same NFE formula as EvoSearch, and never plans beyond the budget', () => {
    for (let budget = 45; budget < 3000; budget += 37) {
      const plan = planRemaining({ from: 5, budgetLeft: budget, steps: 50, nextGap: 5, gap: 10, lastGeneration: 40, nextWeight: 2, finalWeight: 1, minPopulation: 4, usable: () => true });
      assert.ok(plan.nfe <= budget, `budget ${budget}: ${plan.nfe}`);
      assert.equal(plan.nfe, remainingSpend(5, plan.evolutionSchedule, plan.populationSchedule, 50));
      const last = plan.evolutionSchedule.at(-1) ?? 5;
      assert.ok(budget - plan.nfe < 50 - last, `budget ${budget}: ${budget - plan.nfe} left`);
      if (plan.evolutionSchedule.length > 0) assert.ok(plan.populationSchedule.every((k) => k >= 4));
    }
    // The whole run as first planned costs what EvoSearch's formula says for that schedule.
    const start = initialAdaptivePlan(SD21);
    assert.equal(start.nfe, evoSearchSpend(start, 50).nfe);
    assert.deepEqual(start.evolutionSchedule, [0, 20, 30, 40]);
  });

  it('frees every state it does not keep: at the end only the final population and the best sample are held', () => {
    const { worker, done, machine } = run(SD21, (id, from) => hashReward(id, 9) * (1 - from / 55));
    assert.ok(done.kind === 'done');
    const held = new Set(worker.steps.keys());
    const expected = new Set([...done.finalSamples, done.best!.sampleId]);
    assert.deepEqual(held, expected);
    assert.equal(machine.progress().generation, machine.progress().generations);
  });

  it('rejects bad configurations with the field named', () => {
    const bad: [Partial<AdaptiveEvoSearchConfig>, string][] = [
      [{ budgetNfe: 33 * 50 + 49 }, 'budgetNfe'],
      [{ firstGeneration: 49 }, 'firstGeneration'],
      [{ initialPopulation: 0 }, 'initialPopulation'],
      [{ firstGap: 0 }, 'firstGap'],
      [{ generationGap: 1.5 }, 'generationGap'],
      [{ lastGeneration: 50 }, 'lastGeneration'],
      [{ collapseRatio: 1 }, 'collapseRatio'],
      [{ minPopulation: 0 }, 'minPopulation'],
      [{ elites: -1 }, 'elites'],
      [{ mutationRate: 0 }, 'mutationRate'],
      [{ tournamentFraction: 1.5 }, 'tournamentFraction'],
      [{ firstGeneration: 5, noiseStd: Array.from({ length: 50 }, () => 0) }, 'firstGeneration'],
      [{ steps: 1 }, 'steps'],
    ];
    for (const [patch, field] of bad) {
      assert.throws(() => new AdaptiveEvoSearch({ ...SD21, ...patch }), (error: unknown) => error instanceof SearchConfigError && error.field === field, `expected an error on ${field}`);
    }
  });

  it('refuses a non-finite reward with the candidate named, and out-of-order calls', () => {
    assert.throws(() => run(SD21, (id) => (id === 10 ? Number.NaN : 0.5)), /candidate 10 is NaN/);
    const machine = new AdaptiveEvoSearch(SD21);
    assert.throws(() => machine.accept([]), /no round in flight/);
    machine.next();
    assert.throws(() => machine.next(), /before accept/);
  });
});

describe('adaptive EvoSearch in the run plan', () => {
  it('is planned from the fixed EvoSearch plan: K_0, e_0, the first gap and the last index', () => {
    const plan = resolveRunConfig({ method: 'evosearch-adaptive', budgetNfe: 4000, seed: 5 });
    assert.equal(plan.method, 'evosearch-adaptive');
    assert.deepEqual(plan.adaptive, { firstGap: 20, generationGap: 10, lastGeneration: 40, collapseRatio: 0.5, minPopulation: 21 });
    assert.ok(plan.planned['evosearch-adaptive'].nfe <= 4000 && plan.planned['evosearch-adaptive'].nfe > 4000 - 50);
    assert.match(describeSchedule(plan, 'evosearch-adaptive'), /^B=4000 starts E=\[0,20,30,40\] K=\[33,/);
    assert.ok(workersWanted(plan) >= 33);
  });

  it('a budget too small is an error naming budgetNfe; for another method it is only unavailable', () => {
    assert.throws(() => resolveRunConfig({ method: 'evosearch-adaptive', budgetNfe: 120 }), (error: unknown) => error instanceof ConfigError && error.field === 'budgetNfe');
    const other = resolveRunConfig({ method: 'best-of-n', budgetNfe: 120 });
    assert.match(other.unavailable['evosearch-adaptive'] ?? '', /budgetNfe/);
  });
});

describe('adaptive EvoSearch end to end on the analytic model', () => {
  it('runs through the engine within the budget, with the same answer on 1 or 3 workers', async () => {
    const plan = resolveRunConfig({ method: 'evosearch-adaptive', budgetNfe: 3000, seed: 3 });
    const sampler = createSampler(plan.sampler);
    const model = loadModel(plan.model, { prediction: sampler.prediction });
    const search = (workers: number, batchSize: number) =>
      runSearch(createSearch(plan, sampler), new Dispatcher(new InProcessPool(Array.from({ length: workers }, () => new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize })))), { population: 4 });
    const one = await search(1, 256);
    const three = await search(3, 7);
    assert.ok(one.best !== null && Number.isFinite(one.best.reward));
    // The last round's counters: what the search spent, before the engine fetches the outputs.
    const spent = one.rounds.at(-1)!.counters.nfe;
    assert.ok(spent <= 3000 && spent > 3000 - 50, `spent ${spent}`);
    assert.deepEqual(three.best, one.best);
    assert.deepEqual(three.candidates.map((c) => c.evaluations), one.candidates.map((c) => c.evaluations));
  });
});
