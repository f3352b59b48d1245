import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CandidateId, SearchCommand, CommandResult, ScoredId } from '../proto/commands.js';
import type { SearchMachine, SearchRound, BestCandidate } from '../search/machine.js';
import {
  createParticleSearch,
  ParticleConfigError,
  plannedParticleCompute,
  resamplingSchedule,
  resolveParticleConfig,
  type ParticleSearchConfig,
} from '../search/particles.js';
import { applyPotential, EMPTY_HISTORY, type PotentialName } from '../search/potentials.js';
import { effectiveSampleSize, multinomialAncestors, normalizedWeights } from '../search/resampling.js';
import type { PlannedSpend } from '../search/planner.js';

/** What a worker counts of a plan (the plan's trajectories is its NFE in units of N steps). */
const counted = (plan: PlannedSpend) => ({ nfe: plan.nfe, decodes: plan.decodes, rewardCalls: plan.rewardCalls });

/** What the fake worker tells the reward function about the state it scores. */
interface Scoring {
  /** The state scored (for a rollout: its source). */
  readonly id: CandidateId;
  /** The init id the state descends from (copies inherit it). */
  readonly root: CandidateId;
  /** Index of the scored x0 prediction (N for a final sample; the rollout's start for a rollout). */
  readonly step: number;
}

type RewardFn = (s: Scoring) => number;

interface State {
  root: CandidateId;
  step: number;
  /** Advances this state's trajectory went through, inherited by copies. */
  path: [number, number][];
}

/**
 * A worker without a model: it keeps each state's step, root and path, checks that every command is
 * legal (states exist, advances start where the state is, a round's commands touch disjoint ids), counts
 * compute as the real worker would, and fabricates rewards with `reward`.
 */
class FakeWorker {
  readonly states = new Map<CandidateId, State>();
  readonly compute = { nfe: 0, decodes: 0, rewardCalls: 0 };
  readonly dropped = new Set<CandidateId>();

  constructor(
    private readonly steps: number,
    private readonly reward: RewardFn,
  ) {}

  run(commands: readonly SearchCommand[]): CommandResult[] {
    assertIndependent(commands);
    return commands.map((c) => this.execute(c));
  }

  private get(id: CandidateId): State {
    const state = this.states.get(id);
    assert.ok(state !== undefined, `state ${id} does not exist on the worker${this.dropped.has(id) ? ' (dropped)' : ''}`);
    return state;
  }

  private create(id: CandidateId, state: State): void {
    assert.ok(!this.states.has(id) && !this.dropped.has(id), `id ${id} reused`);
    this.states.set(id, state);
  }

  private execute(c: SearchCommand): CommandResult {
    const counters = { nfe: 0, forwardPasses: 0, decodes: 0, rewardCalls: 0 };
    const scores: ScoredId[] = [];
    switch (c.kind) {
      case 'init':
        for (const id of c.ids) this.create(id, { root: id, step: 0, path: [] });
        break;
      case 'advance':
        assert.ok(c.from < c.to && c.to <= this.steps, `advance ${c.from} -> ${c.to} out of range`);
        for (const id of c.ids) {
          const s = this.get(id);
          assert.equal(s.step, c.from, `state ${id} is at ${s.step}, asked to advance from ${c.from}`);
          s.step = c.to;
          s.path.push([c.from, c.to]);
          counters.nfe += c.to - c.from;
          if (c.score) {
            counters.decodes += 1;
            counters.rewardCalls += 1;
            scores.push({ id, reward: this.reward({ id, root: s.root, step: c.to }) });
          }
        }
        break;
      case 'rollout':
        for (const item of c.items) {
          const s = this.get(item.source);
          assert.equal(s.step, item.from);
          this.create(item.finalId, { root: s.root, step: this.steps, path: [...s.path, [item.from, this.steps]] });
          counters.nfe += this.steps - item.from;
          counters.decodes += 1;
          counters.rewardCalls += 1;
          scores.push({ id: item.source, reward: this.reward({ id: item.source, root: s.root, step: item.from }) });
        }
        break;
      case 'copy':
        for (const { from, to } of c.items) {
          const s = this.get(from);
          this.create(to, { root: s.root, step: s.step, path: [...s.path] });
        }
        break;
      case 'drop':
        for (const id of c.ids) {
          this.get(id);
          this.states.delete(id);
          this.dropped.add(id);
        }
        break;
      default:
        assert.fail(`unexpected command ${c.kind}`);
    }
    this.compute.nfe += counters.nfe;
    this.compute.decodes += counters.decodes;
    this.compute.rewardCalls += counters.rewardCalls;
    return { kind: c.kind, scores, samples: [], counters };
  }
}

function touched(c: SearchCommand): CandidateId[] {
  switch (c.kind) {
    case 'init':
    case 'advance':
    case 'drop':
    case 'fetch':
      return [...c.ids];
    case 'rollout':
      return c.items.flatMap((it) => [it.source, it.finalId, ...it.archive.map((a) => a.id)]);
    case 'copy':
      return [...new Set(c.items.flatMap((it) => [it.from, it.to]))];
    case 'mutate':
      return c.items.flatMap((it) => [it.parent, it.child]);
  }
}

/** SearchMachine promises that a round's commands may run in any order: no two may touch the same id. */
function assertIndependent(commands: readonly SearchCommand[]): void {
  const owner = new Map<CandidateId, number>();
  commands.forEach((c, i) => {
    for (const id of touched(c)) {
      const other = owner.get(id);
      assert.ok(other === undefined || other === i, `id ${id} is touched by commands ${other} and ${i} of one round`);
      owner.set(id, i);
    }
  });
}

interface Run {
  readonly rounds: { label: string; commands: readonly SearchCommand[] }[];
  readonly best: BestCandidate | null;
  readonly worker: FakeWorker;
  readonly machine: SearchMachine;
}

function drive(config: ParticleSearchConfig, reward: RewardFn): Run {
  const machine = createParticleSearch(config);
  const worker = new FakeWorker(config.steps, reward);
  const rounds: Run['rounds'] = [];
  for (let guard = 0; guard < 10_000; guard++) {
    const round: SearchRound = machine.next();
    if (round.kind === 'done') return { rounds, best: round.best, worker, machine };
    rounds.push({ label: round.label, commands: round.commands });
    machine.accept(worker.run(round.commands));
  }
  assert.fail('the search did not finish');
}

const commandsOf = <K extends SearchCommand['kind']>(run: Run, kind: K) =>
  run.rounds.flatMap((r) => r.commands.filter((c): c is Extract<SearchCommand, { kind: K }> => c.kind === kind));

/** A reward per root in [0, 1), fixed but irregular. */
const rootReward = (root: number) => ((root * 0.6180339887) % 1);

describe('potentials', () => {
  const trace = (name: PotentialName, rs: number[]) => {
    let history = EMPTY_HISTORY;
    return rs.map((r) => {
      const out = applyPotential(name, history, r);
      history = out.history;
      return out.value;
    });
  };
  it('max is the max of the scores so far', () => assert.deepEqual(trace('max', [1, 3, 2, -5]), [1, 3, 3, 3]));
  it('max starts from the first score, also when it is negative', () => assert.deepEqual(trace('max', [-2, -3, -1]), [-2, -2, -1]));
  it('add is the running sum', () => assert.deepEqual(trace('add', [1, 3, 2, -5]), [1, 4, 6, 1]));
  it('diff is r minus the previous r (the first against 0)', () => assert.deepEqual(trace('diff', [1, 3, 2, -5]), [1, 2, -1, -7]));
  it('rt is the current score', () => assert.deepEqual(trace('rt', [1, 3, 2, -5]), [1, 3, 2, -5]));
});

describe('weights and resampling', () => {
  it('normalised weights are exp(lambda v) / sum, stable for large lambda * v', () => {
    const w = normalizedWeights([1000, 999, 0], 10);
    assert.ok(Array.from(w).every(Number.isFinite));
    assert.ok(Math.abs(w.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.ok(Math.abs(w[1]! / w[0]! - Math.exp(-10)) < 1e-15);
    assert.equal(w[2], 0);
    const small = normalizedWeights([0.1, 0.2], 3);
    const z = Math.exp(0.3) + Math.exp(0.6);
    assert.ok(Math.abs(small[0]! - Math.exp(0.3) / z) < 1e-15);
  });
  it('lambda = 0 gives even weights', () => assert.deepEqual(Array.from(normalizedWeights([5, -3, 1e6], 0)), [1 / 3, 1 / 3, 1 / 3]));
  it('ESS is k for even weights and 1 for one-hot weights', () => {
    assert.ok(Math.abs(effectiveSampleSize([0.25, 0.25, 0.25, 0.25]) - 4) < 1e-12);
    assert.equal(effectiveSampleSize([0, 1, 0, 0]), 1);
    assert.ok(Math.abs(effectiveSampleSize([0.5, 0.5, 0, 0]) - 2) < 1e-12);
  });
  it('multinomial: inverse CDF, zero weights never chosen, u near 1 stays in range', () => {
    const w = [0, 0.5, 0, 0.25, 0.25, 0];
    assert.deepEqual(multinomialAncestors(w, [0, 0.49, 0.5, 0.74, 0.75, 1 - 2 ** -53]), [1, 1, 3, 3, 4, 4]);
  });
  it('multinomial frequencies follow the weights', () => {
    const w = [0.1, 0.6, 0.3];
    const n = 30_000;
    const us = Array.from({ length: n }, (_, i) => (i + 0.5) / n);
    const counts = [0, 0, 0];
    for (const a of multinomialAncestors(w, us)) counts[a]!++;
    counts.forEach((c, i) => assert.ok(Math.abs(c / n - w[i]!) < 1e-3, `weight ${i}: ${c / n}`));
  });
});

describe('particle search config', () => {
  const base: ParticleSearchConfig = { particles: 4, steps: 50, seed: 1 };
  it('fills the defaults: lambda 10, max, every 20 steps from 0, x0-prediction, not adaptive', () => {
    const r = resolveParticleConfig(base);
    assert.equal(r.lambda, 10);
    assert.equal(r.potential, 'max');
    assert.equal(r.fitness, 'x0-prediction');
    assert.equal(r.adaptive, false);
    assert.deepEqual(r.resampling, { start: 0, end: 50, interval: 20 });
    assert.deepEqual(r.schedule, [20, 40, 50]);
  });
  it('schedule: start <= i <= end, (i - start) % interval == 0, 0 < i < N, then N once', () => {
    assert.deepEqual(resamplingSchedule(50, { start: 10, end: 30, interval: 10 }), [10, 20, 30, 50]);
    assert.deepEqual(resamplingSchedule(40, { start: 0, end: 40, interval: 20 }), [20, 40]);
    assert.deepEqual(resamplingSchedule(3, { start: 0, end: 3, interval: 1 }), [1, 2, 3]);
    assert.deepEqual(resamplingSchedule(10, { start: 5, end: 5, interval: 3 }), [5, 10]);
    assert.deepEqual(resamplingSchedule(10, { start: 0, end: 0, interval: 3 }), [10]);
    assert.deepEqual(resamplingSchedule(10, { start: 3, end: 9, interval: 4 }), [3, 7, 10]);
  });
  const bad: [string, Record<string, unknown>][] = [
    ['particles', { particles: 0 }],
    ['particles', { particles: 2.5 }],
    ['steps', { steps: 0 }],
    ['lambda', { lambda: -1 }],
    ['lambda', { lambda: Number.NaN }],
    ['potential', { potential: 'sum' }],
    ['adaptive', { adaptive: 'yes' }],
    ['fitness', { fitness: 'final' }],
    ['resampling.start', { resampling: { start: 51 } }],
    ['resampling.end', { resampling: { start: 20, end: 10 } }],
    ['resampling.interval', { resampling: { interval: 0 } }],
    ['resampling.every', { resampling: { every: 5 } }],
    ['lamda', { lamda: 5 }],
    ['seed', { seed: -1 }],
    ['seed', { seed: 1.5 }],
  ];
  for (const [field, change] of bad) {
    it(`rejects ${JSON.stringify(change)} naming ${field}`, () => {
      const config = { ...base, ...change } as unknown as ParticleSearchConfig;
      for (const call of [() => createParticleSearch(config), () => plannedParticleCompute(config)]) {
        assert.throws(call, (e: unknown) => e instanceof ParticleConfigError && e.field === field && e.message.includes(field));
      }
    });
  }
});

describe('particle search: x0-prediction fitness', () => {
  const config: ParticleSearchConfig = { particles: 4, steps: 50, lambda: 10, seed: 7 };
  const run = drive(config, (s) => rootReward(s.root) + s.step / 100);

  it('rounds: init, then a scored advance to each scheduled index, resampling between them', () => {
    assert.deepEqual(run.rounds[0]!.commands, [{ kind: 'init', ids: [0, 1, 2, 3] }]);
    const advances = commandsOf(run, 'advance');
    assert.deepEqual(advances.map((a) => [a.from, a.to, a.score, a.ids.length, a.purpose]), [
      [0, 20, true, 4, 'advance'],
      [20, 40, true, 4, 'advance'],
      [40, 50, true, 4, 'advance'],
    ]);
    // Copies and drops happen only between the advances, and never at N.
    const kinds = run.rounds.map((r) => r.commands.map((c) => c.kind).join('+'));
    for (let i = 0; i < kinds.length; i++) {
      if (kinds[i]!.includes('copy') || kinds[i]!.includes('drop')) assert.ok(kinds[i - 1]!.startsWith('advance') && i < kinds.length - 1, kinds.join(' | '));
    }
    assert.ok(commandsOf(run, 'copy').length > 0, 'lambda 10 over rewards in [0, 1) resamples at least once in two rounds');
  });

  it('every final particle went 0 -> N exactly once, and k particles are alive at N', () => {
    const live = [...run.worker.states.values()];
    assert.equal(live.length, 4);
    for (const s of live) {
      assert.equal(s.step, 50);
      assert.deepEqual(s.path, [[0, 20], [20, 40], [40, 50]]);
    }
  });

  it('copies and drops keep k particles, copy ids are fresh and recorded as copies', () => {
    const copies = commandsOf(run, 'copy').flatMap((c) => c.items);
    const drops = commandsOf(run, 'drop').flatMap((c) => c.ids);
    assert.equal(copies.length, drops.length);
    for (const { from, to } of copies) {
      const record = run.machine.candidates()[to]!;
      assert.deepEqual(record.origin, { op: 'copy' });
      assert.deepEqual(record.parents, [from]);
      assert.ok(to >= 4);
    }
  });

  it('NFE, decodes and reward calls the worker spent equal the plan (k N, k |schedule|)', () => {
    assert.deepEqual(run.worker.compute, counted(plannedParticleCompute(config)));
    assert.deepEqual(plannedParticleCompute(config), { nfe: 200, decodes: 12, rewardCalls: 12, trajectories: 4 });
  });

  it('reports the best final particle, held under its own id', () => {
    const finals = commandsOf(run, 'advance').at(-1)!.ids;
    const rewards = finals.map((id) => run.machine.candidates()[id]!.reward!);
    const top = Math.max(...rewards);
    assert.ok(run.best !== null);
    assert.equal(run.best.reward, top);
    assert.equal(run.best.sampleId, run.best.candidate);
    assert.equal(run.best.candidate, finals[rewards.indexOf(top)]);
    assert.equal(run.machine.candidates()[run.best.candidate]!.scoredBy, 'final');
    assert.ok(run.worker.states.has(run.best.sampleId));
  });

  it('lineage records each advance of each particle', () => {
    for (const id of commandsOf(run, 'advance').at(-1)!.ids) {
      const r = run.machine.candidates()[id]!;
      assert.equal(r.step, 50);
      assert.equal(r.noise.at(-1)!.to, 50);
      assert.ok(r.noise.every((a) => a.purpose === 'advance' || a.purpose === 'init'));
    }
  });

  it('progress counts scheduled rounds', () => {
    const p = run.machine.progress();
    assert.equal(p.generation, 3);
    assert.equal(p.generations, 3);
    assert.deepEqual(p.best, run.best);
    assert.equal(p.lastRoundRewards.length, 4);
    const fresh = createParticleSearch(config);
    assert.deepEqual(fresh.progress(), { generation: 0, generations: 3, best: null, lastRoundRewards: [] });
  });
});

describe('particle search: rollout fitness', () => {
  const config: ParticleSearchConfig = { particles: 3, steps: 30, fitness: 'rollout', resampling: { start: 10, end: 20, interval: 10 }, seed: 3 };
  // Rollouts from early indices score highest for root 1, so the answer may be an intermediate rollout.
  const reward: RewardFn = (s) => rootReward(s.root) + (s.root === 1 ? 1 - s.step / 30 : 0);
  const run = drive(config, reward);

  it('advances unscored to each index < N, rolls every particle out there, scores the final advance', () => {
    const shapes = run.rounds.map((r) => r.commands.filter((c) => c.kind !== 'drop' && c.kind !== 'copy').map((c) => (c.kind === 'advance' ? `advance ${c.from}-${c.to}${c.score ? ' scored' : ''}` : c.kind === 'rollout' ? `rollout ${c.items.map((it) => it.from).join(',')}` : c.kind)).join('+')).filter((s) => s !== '');
    assert.deepEqual(shapes, ['init', 'advance 0-10', 'rollout 10,10,10', 'advance 10-20', 'rollout 20,20,20', 'advance 20-30 scored']);
  });

  it('NFE implied by the commands equals the plan: k N + k (N - i) per rollout index', () => {
    assert.deepEqual(run.worker.compute, counted(plannedParticleCompute(config)));
    assert.deepEqual(plannedParticleCompute(config), { nfe: 3 * 30 + 3 * 20 + 3 * 10, decodes: 9, rewardCalls: 9, trajectories: 6 });
  });

  it('keeps only the best rollout final; the answer is the best of rollouts and final particles', () => {
    const rollouts = commandsOf(run, 'rollout').flatMap((c) => c.items);
    const finals = commandsOf(run, 'advance').at(-1)!.ids;
    const all = [
      ...rollouts.map((it) => ({ candidate: it.source, sampleId: it.finalId, reward: run.machine.candidates()[it.finalId]!.reward! })),
      ...finals.map((id) => ({ candidate: id, sampleId: id, reward: run.machine.candidates()[id]!.reward! })),
    ];
    const top = all.reduce((a, b) => (b.reward > a.reward ? b : a));
    assert.deepEqual(run.best, top);
    for (const it of rollouts) {
      assert.equal(run.worker.states.has(it.finalId), it.finalId === run.best!.sampleId, `rollout final ${it.finalId}`);
      assert.deepEqual(run.machine.candidates()[it.finalId]!.origin, { op: 'rollout-final', from: it.from });
    }
    for (const id of finals) assert.ok(run.worker.states.has(id));
  });

  it('frees an overtaken rollout final in a cleanup round when a final particle wins', () => {
    // Rollouts score low, final samples high: the best rollout final is replaced at N and freed.
    const c: ParticleSearchConfig = { ...config, seed: 4 };
    const r = drive(c, (s) => (s.step === 30 ? 10 : 0) + rootReward(s.root));
    assert.equal(r.best!.sampleId, r.best!.candidate);
    assert.deepEqual(r.rounds.at(-1)!.commands.map((x) => x.kind), ['drop']);
    assert.equal(r.worker.states.size, 3);
    assert.deepEqual(r.worker.compute, counted(plannedParticleCompute(c)));
  });
});

describe('particle search: resampling behaviour', () => {
  it('large lambda puts every particle on the highest-reward one', () => {
    const run = drive({ particles: 8, steps: 20, lambda: 1000, resampling: { interval: 10 }, seed: 11 }, (s) => s.root);
    // After the resampling at 10 every survivor descends from root 7, the best.
    const finals = commandsOf(run, 'advance').at(-1)!.ids;
    for (const id of finals) assert.equal(run.worker.states.get(id)!.root, 7);
    assert.deepEqual(commandsOf(run, 'drop').flatMap((c) => c.ids).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  });

  it('lambda = 0 resamples uniformly, whatever the rewards', () => {
    const k = 8;
    const counts = new Array<number>(k).fill(0);
    const seeds = 300;
    for (let seed = 0; seed < seeds; seed++) {
      const run = drive({ particles: k, steps: 2, lambda: 0, resampling: { interval: 1 }, seed }, (s) => s.root * 100);
      // The particles advanced 1 -> 2 after the one resampling at index 1, by root.
      for (const id of commandsOf(run, 'advance')[1]!.ids) counts[run.worker.states.get(id)!.root]!++;
    }
    // Each root expects seeds = 300 descendants (k draws of p = 1/k per run); sd ~ 16.
    for (const c of counts) assert.ok(Math.abs(c - seeds) < 80, `descendants per root: ${counts.join(' ')}`);
  });

  it('adaptive: even weights (equal rewards) never resample; spread weights do', () => {
    const even = drive({ particles: 6, steps: 40, adaptive: true, resampling: { interval: 5 }, seed: 2 }, () => 0.5);
    assert.equal(commandsOf(even, 'copy').length + commandsOf(even, 'drop').length, 0);
    assert.deepEqual(commandsOf(even, 'advance').map((a) => [a.from, a.to]), [[0, 5], [5, 10], [10, 15], [15, 20], [20, 25], [25, 30], [30, 35], [35, 40]]);
    assert.equal(even.machine.progress().generation, 8);
    const spread = drive({ particles: 6, steps: 40, adaptive: true, lambda: 100, resampling: { interval: 5 }, seed: 2 }, (s) => s.root);
    assert.ok(commandsOf(spread, 'copy').length > 0);
    // Once every particle shares root 5 the weights are even again, so it resamples once only.
    assert.equal(commandsOf(spread, 'copy').length, 1);
  });

  // Particle 0 scores 1 at index 10, the others 0: lambda 1000 makes particle 0 and its copies 4, 5, 6
  // the population. At 20, copy 4 scores 0.5 and the rest 0; what happens then depends on whether the
  // copies carry particle 0's history.
  const inherited = (potential: PotentialName) =>
    drive({ particles: 4, steps: 30, lambda: 1000, potential, adaptive: true, resampling: { interval: 10 }, seed: 5 }, (s) =>
      s.step === 10 ? (s.id === 0 ? 1 : 0) : s.step === 20 ? (s.id === 4 ? 0.5 : 0) : 0,
    );
  const firstRound = [{ from: 0, to: 4 }, { from: 0, to: 5 }, { from: 0, to: 6 }];
  it('the copies inherit the history: max keeps the inherited 1 for all, so weights stay even at 20', () => {
    const run = inherited('max');
    assert.deepEqual(commandsOf(run, 'copy').flatMap((c) => c.items), firstRound);
    assert.deepEqual(commandsOf(run, 'drop').flatMap((c) => c.ids), [1, 2, 3]);
    assert.deepEqual(commandsOf(run, 'advance').at(-1)!.ids, [0, 4, 5, 6]);
  });
  it('the copies inherit the history: add makes 1 + 0.5 beat 1 + 0', () => {
    const run = inherited('add');
    assert.deepEqual(commandsOf(run, 'copy').flatMap((c) => c.items), [...firstRound, { from: 4, to: 7 }, { from: 4, to: 8 }, { from: 4, to: 9 }]);
    assert.deepEqual(commandsOf(run, 'drop').flatMap((c) => c.ids), [1, 2, 3, 0, 5, 6]);
    assert.deepEqual(commandsOf(run, 'advance').at(-1)!.ids, [4, 7, 8, 9]);
  });
  it('rt looks at the current score only', () => {
    const run = inherited('rt');
    assert.deepEqual(commandsOf(run, 'advance').at(-1)!.ids, [4, 7, 8, 9]);
  });
});

describe('particle search: determinism and protocol', () => {
  const config: ParticleSearchConfig = { particles: 8, steps: 30, lambda: 0, resampling: { interval: 5 }, seed: 21 };
  const reward: RewardFn = (s) => rootReward(s.root) * s.step;
  const stream = (c: ParticleSearchConfig) => JSON.stringify(drive(c, reward).rounds);

  it('the same config and seed give the same command stream', () => assert.equal(stream(config), stream({ ...config })));
  it('a different seed gives different resampling', () => assert.notEqual(stream(config), stream({ ...config, seed: 22 })));
  it('a bigint seed works like the number', () => assert.equal(stream(config), stream({ ...config, seed: 21n })));

  it('refuses next() before accept(), accept() with nothing in flight, and a wrong result count', () => {
    const m = createParticleSearch(config);
    assert.throws(() => m.accept([]), /no round in flight/);
    m.next();
    assert.throws(() => m.next(), /before accept/);
    assert.throws(() => m.accept([]), /had 1 commands, got 0 results/);
  });

  it('refuses a non-finite reward', () => {
    const m = createParticleSearch(config);
    const worker = new FakeWorker(30, () => Number.NaN);
    m.accept(worker.run((m.next() as Extract<SearchRound, { kind: 'commands' }>).commands));
    const round = m.next() as Extract<SearchRound, { kind: 'commands' }>;
    assert.throws(() => m.accept(worker.run(round.commands)), /rewards must be finite/);
  });

  it('a single particle never copies and costs N NFEs', () => {
    const c: ParticleSearchConfig = { particles: 1, steps: 12, resampling: { interval: 3 }, seed: 0 };
    const run = drive(c, (s) => s.step);
    assert.equal(commandsOf(run, 'copy').length, 0);
    assert.deepEqual(run.best, { candidate: 0, sampleId: 0, reward: 12 });
    assert.deepEqual(run.worker.compute, counted(plannedParticleCompute(c)));
  });
});
