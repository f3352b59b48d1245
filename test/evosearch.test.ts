import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EvoSearch, type EvoSearchConfig } from '../search/evosearch.js';
import { evoSearchSpend } from '../search/planner.js';
import { SearchConfigError } from '../search/search-config-error.js';
import type { RolloutCommand } from '../proto/commands.js';
import { hashReward, MetadataWorker } from '../search/metadata-worker.js';

const SD21: EvoSearchConfig = {
  steps: 50,
  evolutionSchedule: [0, 20, 30, 40],
  populationSchedule: [42, 26, 26, 26, 30],
  elites: 5,
  mutationRate: 0.2,
  tournamentFraction: 0.9,
  archive: true,
  noiseStd: Array.from({ length: 50 }, (_, i) => 1 - i / 60),
  seed: 7,
};

function run(config: EvoSearchConfig, reward = (id: number) => hashReward(id, 3)) {
  const worker = new MetadataWorker(config.steps, (id) => reward(id));
  const machine = new EvoSearch(config);
  const done = worker.drive(machine);
  return { worker, machine, done };
}

describe('EvoSearch machine', () => {
  it('spends exactly the NFEs of the spec formula (SD2.1 defaults: 5000) and scores 1.5x Best-of-N', () => {
    const { worker } = run(SD21);
    assert.equal(worker.counters.nfe, 5000);
    assert.equal(evoSearchSpend(SD21, 50).nfe, 5000);
    // Rollouts of 42 + 26 + 26 + 26 individuals and the final 30 are decoded and scored.
    assert.equal(worker.counters.decodes, 150);
    assert.equal(worker.counters.decodes / (5000 / 50), 1.5);
  });

  it('FLUX and Wan defaults cost 29.3 and 20 trajectories', () => {
    const flux = { ...SD21, evolutionSchedule: [5, 20, 30, 40], populationSchedule: [14, 7, 7, 7, 10], elites: 3 };
    const wan = { ...SD21, evolutionSchedule: [5, 20, 30, 45], populationSchedule: [10, 5, 5, 5, 5], elites: 2 };
    assert.equal(run(flux).worker.counters.nfe / 50, 29.3);
    assert.equal(run(wan).worker.counters.nfe / 50, 20);
  });

  it('grows the candidate pool with the archive: 42, 68, 94, 120 for the SD2.1 defaults', () => {
    const { machine } = run(SD21);
    assert.deepEqual(machine.poolSizes(), [42, 68, 94, 120]);
    // Archive states come from rollouts only, one per later generation index.
    const archive = machine.candidates().filter((c) => c.origin.op === 'archive');
    assert.equal(archive.length, 42 * 3 + 26 * 2 + 26 * 1);
  });

  it('without the archive the pool is only the current individuals', () => {
    const { machine, worker } = run({ ...SD21, archive: false });
    assert.equal(machine.candidates().filter((c) => c.origin.op === 'archive').length, 0);
    assert.deepEqual(machine.poolSizes(), [42, 26, 26, 26]);
    assert.equal(worker.counters.nfe, 5000);
  });

  it('keeps elites unmutated and fills the rest with mutated tournament winners', () => {
    const worker = new MetadataWorker(50, (id) => hashReward(id, 3));
    const machine = new EvoSearch(SD21);
    const first = machine.next();
    assert.equal(first.kind, 'commands');
    if (first.kind !== 'commands') return;
    machine.accept(first.commands.map((c) => worker.execute(c)));
    const second = machine.next();
    if (second.kind !== 'commands') throw new Error('expected commands');
    const mutate = second.commands.find((c) => c.kind === 'mutate');
    const advance = second.commands.find((c) => c.kind === 'advance');
    assert.ok(mutate && mutate.kind === 'mutate' && advance && advance.kind === 'advance');
    assert.equal(mutate.items.length, 26 - 5);
    assert.ok(mutate.items.every((m) => m.op === 'xT' && m.beta === 0.2), 'generation at x_T mutates with the x_T rule');
    const rewards = machine.candidates().filter((c) => c.id < 42).map((c) => ({ id: c.id, reward: c.reward! }));
    const top5 = rewards.sort((a, b) => b.reward - a.reward || a.id - b.id).slice(0, 5).map((c) => c.id);
    assert.deepEqual(advance.ids.slice(0, 5), top5);
    assert.equal(advance.ids.length, 26);
    assert.equal(advance.from, 0);
    assert.equal(advance.to, 20);
    // The next generation at step 20 mutates with the SDE rule at that step's noise std.
    machine.accept(second.commands.map((c) => worker.execute(c)));
    const third = machine.next();
    if (third.kind !== 'commands') throw new Error('expected commands');
    const sde = third.commands.find((c) => c.kind === 'mutate');
    assert.ok(sde && sde.kind === 'mutate' && sde.items.every((m) => m.op === 'sde' && m.sigma === SD21.noiseStd[20]));
  });

  it('returns the best sample over everything evaluated, and frees every other rollout sample', () => {
    const { machine, done, worker } = run(SD21);
    assert.equal(done.kind, 'done');
    if (done.kind !== 'done' || done.best === null) throw new Error('no best');
    const scored = machine.candidates().filter((c) => c.reward !== undefined);
    const max = Math.max(...scored.map((c) => c.reward!));
    assert.equal(done.best.reward, max);
    assert.ok(worker.steps.has(done.best.sampleId), 'the best sample is still held');
    const finalsHeld = [...worker.steps.keys()].filter((id) => machine.candidates()[id]!.origin.op === 'rollout-final');
    assert.ok(finalsHeld.length <= 1, `at most the best rollout sample is kept, found ${finalsHeld.length}`);
  });

  it('finds better rewards when rewards are heritable (selection works)', () => {
    // Reward inherited from the root noise with a small per-candidate perturbation: selection must
    // move the population towards the best roots.
    const rootOf = (machine: EvoSearch, id: number): number => {
      let c = machine.candidates()[id]!;
      while (c.parents.length > 0) c = machine.candidates()[c.parents[0]!]!;
      return c.id;
    };
    const machine = new EvoSearch(SD21);
    const worker = new MetadataWorker(50, (id) => hashReward(rootOf(machine, id), 1) + 0.01 * hashReward(id, 2));
    worker.drive(machine);
    const finals = machine.candidates().filter((c) => c.scoredBy === 'final');
    const initial = machine.candidates().filter((c) => c.origin.op === 'init');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(finals.map((c) => c.reward!)) > mean(initial.map((c) => c.reward!)) + 0.2);
  });

  it('is deterministic: the same seed gives the same commands; another seed other tournaments', () => {
    const a = run(SD21).worker.log;
    const b = run(SD21).worker.log;
    const c = run({ ...SD21, seed: 8 }).worker.log;
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('Best-of-N is EvoSearch with an empty schedule', () => {
    const { worker, done, machine } = run({ ...SD21, evolutionSchedule: [], populationSchedule: [100], elites: 0 });
    assert.equal(machine.method, 'best-of-n');
    assert.equal(worker.counters.nfe, 5000);
    assert.equal(worker.counters.decodes, 100);
    assert.ok(done.kind === 'done' && done.best !== null);
  });

  it('rolls each individual out from its generation index with its own final id', () => {
    const { worker } = run(SD21);
    const rollouts = worker.log.filter((c): c is RolloutCommand => c.kind === 'rollout');
    assert.deepEqual(rollouts.map((r) => r.items[0]!.from), [0, 20, 30, 40]);
    const finals = rollouts.flatMap((r) => r.items.map((i) => i.finalId));
    assert.equal(new Set(finals).size, finals.length);
  });

  it('rejects bad configurations with the field named', () => {
    const bad: [Partial<EvoSearchConfig>, string][] = [
      [{ populationSchedule: [42, 26, 26] }, 'populationSchedule'],
      [{ evolutionSchedule: [0, 30, 20, 40] }, 'evolutionSchedule[2]'],
      [{ evolutionSchedule: [0, 20, 30, 50] }, 'evolutionSchedule[3]'],
      [{ elites: 27 }, 'elites'],
      [{ mutationRate: 1.5 }, 'mutationRate'],
      [{ tournamentFraction: 0 }, 'tournamentFraction'],
      [{ noiseStd: Array.from({ length: 50 }, () => 0) }, 'evolutionSchedule[1]'],
      [{ steps: 0 }, 'steps'],
    ];
    for (const [patch, field] of bad) {
      assert.throws(() => new EvoSearch({ ...SD21, ...patch }), (error: unknown) => error instanceof SearchConfigError && error.field === field, `expected an error on ${field}`);
    }
  });

  it('refuses a non-finite reward with the candidate named', () => {
    assert.throws(() => run(SD21, (id) => (id === 10 ? Number.NaN : 0.5)), /candidate 10 is NaN/);
  });

  it('refuses out-of-order calls', () => {
    const machine = new EvoSearch(SD21);
    assert.throws(() => machine.accept([]), /no round in flight/);
    machine.next();
    assert.throws(() => machine.next(), /before accept/);
  });
});
