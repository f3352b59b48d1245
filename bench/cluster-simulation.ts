/**
 * The coordinator at scale, simulated: 64–256 workers whose model backend takes a video model's time
 * per denoising step but does no arithmetic and holds no tensors (metadata-only states), a population
 * of 1,000 or more, and the real search machine and dispatcher. Measures how busy the workers are kept
 * (efficiency), the coordinator's CPU time and memory, and the latent bytes moved per generation, next
 * to what a design routing every latent through the coordinator would move.
 *
 *   npm run build && node dist/bench/cluster-simulation.js [--workers 64,128,256] [--population 1000]
 *       [--step-ms 20] [--batch 8] [--latent 16x21x60x104]
 *
 * The workers are in-process simulated ones (timers, no threads or processes): the figures are the
 * coordinator's own costs, not transport costs (bench/cluster-efficiency.ts measures those).
 */
import { parseArgs } from 'node:util';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import type { WorkerPool } from '../proto/worker-pool.js';
import { EvoSearch } from '../search/evosearch.js';
import { planEvoSearch } from '../search/planner.js';
import type { Command, CommandResult, SearchCommand, TransferredState } from '../proto/commands.js';
import { zeroCounters } from '../proto/commands.js';
import { hashReward, MetadataWorker } from '../search/metadata-worker.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '64,128,256' },
    population: { type: 'string', default: '1000' },
    'step-ms': { type: 'string', default: '20' },
    batch: { type: 'string', default: '8' },
    latent: { type: 'string', default: '16x21x60x104' },
    steps: { type: 'string', default: '50' },
  },
});
const steps = Number(values.steps);
const stepMs = Number(values['step-ms']);
const batch = Number(values.batch);
const latentBytes = values.latent.split('x').map(Number).reduce((a, b) => a * b, 1) * 4;

/**
 * A worker that keeps only each state's step and sleeps as long as the model would run: the latents
 * it advances go through the network in batches of `batch`, `stepMs` per step of a batch.
 */
class SimulatedWorker {
  readonly metadata = new MetadataWorker(steps, (id, from) => hashReward(id, from));
  busyMs = 0;
  /** States this worker's commands read or wrote: what a coordinator-routed design ships to it and back. */
  touched = 0;

  async execute(commands: readonly Command[]): Promise<CommandResult[]> {
    const results: CommandResult[] = [];
    let nfe = 0;
    for (const command of commands) {
      if (command.kind === 'export') {
        const states: TransferredState[] = command.ids.map((id) => ({ id, step: this.metadata.steps.get(id)!, latent: new Float32Array(0), previousX0: null, cachedOutput: null }));
        results.push({ kind: 'export', scores: [], samples: [], counters: zeroCounters(), states });
      } else if (command.kind === 'import') {
        for (const { as, state } of command.states) this.metadata.steps.set(as, state.step);
        results.push({ kind: 'import', scores: [], samples: [], counters: zeroCounters() });
      } else {
        this.touched += touchedStates(command as SearchCommand);
        const result = this.metadata.execute(command as SearchCommand);
        nfe += result.counters.nfe;
        results.push(result);
      }
    }
    // NFEs of one latent each; a batch of `batch` latents costs one step's time.
    const ms = (nfe / batch) * stepMs;
    this.busyMs += ms;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    return results;
  }
}

function touchedStates(command: SearchCommand): number {
  switch (command.kind) {
    case 'init':
    case 'advance':
      return command.ids.length;
    case 'rollout':
      return command.items.length;
    case 'mutate':
    case 'copy':
      return command.items.length * 2;
    default:
      return 0;
  }
}

class SimulatedPool implements WorkerPool {
  readonly workers: SimulatedWorker[];
  constructor(count: number) {
    this.workers = Array.from({ length: count }, () => new SimulatedWorker());
  }
  get size(): number {
    return this.workers.length;
  }
  describe(index: number): string {
    return `simulated #${index}`;
  }
  execute(index: number, commands: readonly Command[]): Promise<CommandResult[]> {
    return this.workers[index]!.execute(commands);
  }
  async close(): Promise<void> {}
}

// The SD2.1 preset's shape (E=[0,20,30,40], K=[42,26,26,26,30] at 50 steps) scaled so K_0 >= population.
const shape = { evolutionSchedule: [0, 20, 30, 40], populationSchedule: [42, 26, 26, 26, 30] };
const scale = Math.ceil(Number(values.population) / shape.populationSchedule[0]!);
const plan = planEvoSearch(5000 * scale, steps, shape);
const noiseStd = new Array<number>(steps).fill(1);

const rows: string[] = [];
for (const workers of values.workers.split(',').map(Number)) {
  const pool = new SimulatedPool(workers);
  const machine = new EvoSearch({ ...plan, elites: 5, mutationRate: 0.2, tournamentFraction: 0.9, archive: true, steps, noiseStd, seed: 1 });
  const dispatcher = new Dispatcher(pool);
  let peakHeap = 0;
  const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)), 50);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const outcome = await runSearch(machine, dispatcher, {
    onRound: () => {
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    },
  });
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  // A coordinator-routed design ships every state a command reads or writes to the worker and back.
  const routedBytes = pool.workers.reduce((a, w) => a + w.touched, 0) * 2 * latentBytes;
  const generations = outcome.rounds.length;
  const busy = pool.workers.reduce((a, w) => a + w.busyMs, 0);
  rows.push(
    `| ${workers} | ${plan.populationSchedule[0]} | ${outcome.counters.nfe} | ${generations} | ${(wall / 1000).toFixed(1)} | ${(busy / (workers * wall)).toFixed(3)} | ${((cpu.user + cpu.system) / 1000 / generations).toFixed(1)} | ${(peakHeap / 2 ** 20).toFixed(0)} | ${(dispatcher.stats.transfers * latentBytes / 2 ** 30 / generations).toFixed(2)} | ${(routedBytes / 2 ** 30 / generations).toFixed(1)} |`,
  );
}

console.log(`EvoSearch, E=[${plan.evolutionSchedule.join(',')}] K=[${plan.populationSchedule.join(',')}], ${steps} steps; simulated workers: ${stepMs} ms per step of a batch of ${batch}, latent ${values.latent} floats (${(latentBytes / 2 ** 20).toFixed(1)} MiB)`);
console.log('');
console.log('| workers | population (K_0) | NFE | rounds | wall s | efficiency (busy / workers × wall) | coordinator CPU ms per round | coordinator heap peak MiB | latent GiB moved per round (worker to worker) | GiB per round if routed through the coordinator |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
console.log(rows.join('\n'));
