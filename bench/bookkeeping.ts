/**
 * How long the search bookkeeping (selection, mutation planning, lineage, archive; no tensors) takes
 * per generation at a large population. The workers are metadata-only stand-ins, and only the time
 * inside the machine's next() and accept() is counted.
 *
 *   npm run build && node dist/bench/bookkeeping.js [population=10000] [repeats=5]
 */
import { EvoSearch } from '../search/evosearch.js';
import { createParticleSearch } from '../search/particles.js';
import type { SearchMachine } from '../search/machine.js';
import { hashReward, MetadataWorker } from '../search/metadata-worker.js';

const population = Number(process.argv[2] ?? 10000);
const repeats = Number(process.argv[3] ?? 5);
const steps = 50;

function timeMachine(make: () => SearchMachine): { perRoundMs: number[]; rounds: number; totalMs: number } {
  const machine = make();
  const worker = new MetadataWorker(steps, (id, from) => hashReward(id, from));
  const perRoundMs: number[] = [];
  for (;;) {
    const t0 = performance.now();
    const round = machine.next();
    const t1 = performance.now();
    if (round.kind === 'done') break;
    const results = round.commands.map((c) => worker.execute(c));
    const t2 = performance.now();
    machine.accept(results);
    const t3 = performance.now();
    perRoundMs.push(t1 - t0 + (t3 - t2));
  }
  return { perRoundMs, rounds: perRoundMs.length, totalMs: perRoundMs.reduce((a, b) => a + b, 0) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const machines: [string, () => SearchMachine, number][] = [
  [
    `EvoSearch, K=${population} per generation, E=[0,20,30,40], archive on`,
    () => new EvoSearch({ steps, evolutionSchedule: [0, 20, 30, 40], populationSchedule: [population, population, population, population, population], elites: 5, mutationRate: 0.2, tournamentFraction: 0.9, archive: true, noiseStd: Array.from({ length: steps }, () => 0.5), seed: 1 }),
    4,
  ],
  [
    `Particles, k=${population}, resampling every 5 steps`,
    () => createParticleSearch({ particles: population, steps, resampling: { start: 0, end: steps, interval: 5 }, seed: 1 }),
    10,
  ],
];

console.log(`| search | generations | bookkeeping per generation, ms (median of ${repeats}) | whole search, ms |`);
console.log('|---|---|---|---|');
for (const [name, make, generations] of machines) {
  const totals: number[] = [];
  for (let r = 0; r < repeats; r++) totals.push(timeMachine(make).totalMs);
  const total = median(totals);
  console.log(`| ${name} | ${generations} | ${(total / generations).toFixed(1)} | ${total.toFixed(1)} |`);
}
