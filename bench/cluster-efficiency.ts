/**
 * Orchestration efficiency of the gRPC cluster path: the same search on 1, 2, 4, ... real worker
 * processes (`evosearch worker`, loopback), against local worker threads. Efficiency = the workers'
 * busy time (batches running, as each worker reports in Health) / (workers × wall time); speedup =
 * wall time on 1 worker / wall time on n. Prints a markdown table.
 *
 *   npm run build && node dist/bench/cluster-efficiency.js [--workers 1,2,4] [--model models/bundles/tiny-sd]
 *       [--prompt "..."] [--budget 2500] [--repeats 3] [--threads 1]
 *
 * Give each worker process its own cores (`--threads`: onnxruntime threads per worker): on a machine
 * with fewer cores than workers × threads, the figures measure the oversubscription, not the cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import type { WorkerPool } from '../proto/worker-pool.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { GrpcWorkerPool } from '../coordinator/transport/grpc-pool.js';
import { ThreadPool } from '../worker/thread-pool.js';
import { planRun } from '../config/plan-run.js';
import type { RunPlan } from '../config/resolve-run-config.js';
import { createSampler } from '../samplers/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2,4' },
    model: { type: 'string', default: join(root, 'models', 'bundles', 'tiny-sd') },
    prompt: { type: 'string', default: 'two red circles left of a blue square' },
    budget: { type: 'string', default: '2500' },
    repeats: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
  },
});
const counts = values.workers.split(',').map(Number);
const repeats = Number(values.repeats);

interface Worker {
  readonly child: ChildProcess;
  readonly address: string;
}

async function startWorker(): Promise<Worker> {
  const child = spawn(process.execPath, [join(root, 'bin', 'evosearch.js'), 'worker', '--model', values.model, '--listen', '127.0.0.1:0', '--insecure', '--threads', values.threads, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  return { child, address: (JSON.parse(line) as { address: string }).address };
}

async function timeSearch(plan: RunPlan, pool: WorkerPool): Promise<number> {
  const started = performance.now();
  await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(pool));
  return performance.now() - started;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const plan = await planRun({ model: values.model, prompt: values.prompt, budgetNfe: Number(values.budget), seed: 1, batchSize: 64 }, 'benchmark');
const rows: string[] = [];
let oneWorkerMs: number | null = null;
for (const n of counts) {
  const workers = await Promise.all(Array.from({ length: n }, () => startWorker()));
  try {
    const pool = await GrpcWorkerPool.connect(workers.map((w) => w.address), workerSetupFor(plan), { runId: `bench-${n}` });
    await timeSearch(plan, pool); // warm-up: sessions, caches
    const before = await pool.health();
    const walls: number[] = [];
    for (let r = 0; r < repeats; r++) walls.push(await timeSearch(plan, pool));
    const after = await pool.health();
    const busy = after.reduce((a, h, i) => a + h.busyMs - before[i]!.busyMs, 0);
    const wallTotal = walls.reduce((a, b) => a + b, 0);
    const wall = median(walls);
    oneWorkerMs ??= wall;
    rows.push(`| gRPC processes | ${n} | ${wall.toFixed(0)} | ${(busy / (n * wallTotal)).toFixed(3)} | ${(oneWorkerMs / wall).toFixed(2)} |`);
    await pool.close();
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
  }
}
for (const n of counts) {
  const pool = await ThreadPool.start(n, { ...workerSetupFor(plan), intraOpThreads: Number(values.threads) });
  try {
    await timeSearch(plan, pool);
    const walls: number[] = [];
    for (let r = 0; r < repeats; r++) walls.push(await timeSearch(plan, pool));
    rows.push(`| worker threads | ${n} | ${median(walls).toFixed(0)} | – | ${(oneWorkerMs! / median(walls)).toFixed(2)} |`);
  } finally {
    await pool.close();
  }
}
console.log(`${plan.method} on ${values.model}, ${plan.planned[plan.method].nfe} NFEs, batch ${plan.batchSize}; ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; median of ${repeats} after a warm-up`);
console.log('');
console.log('| transport | workers | wall ms (median) | efficiency (busy / workers × wall) | speedup vs 1 gRPC worker |');
console.log('|---|---|---|---|---|');
console.log(rows.join('\n'));
