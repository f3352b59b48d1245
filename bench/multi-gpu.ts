/**
 * A whole cluster on one several-GPU host: nats-server, one `evosearch coordinator`, and one
 * `evosearch worker` per GPU, each pinned to its GPU. The same EvoSearch run is submitted with
 * `evosearch run --cluster` on 1, 2, 4… workers; then one worker is killed (SIGKILL) in the middle of a
 * run on the largest count. Prints a markdown table per model and appends one JSON line per run to
 * --results.
 *
 *   npm run build && node dist/bench/multi-gpu.js [--gpus 1,2,4] [--models tiny-sd,tiny-video,name=FOLDER]
 *       [--providers webgpu] [--threads 4] [--repeats 2] [--budget tiny-sd=20000] [--no-pin] [--no-kill]
 *       [--use-gpus 0] [--call-rows 16] [--results runs/multi-gpu.jsonl]
 *
 * Models: a name under models/bundles, or `name=FOLDER` for a bundle elsewhere (the SD-2.1-work
 * bundle that models/scripts/make_standin_bundle.py writes on the GPU machine); the coordinator is
 * given those folders as model roots. A name with "video" in it gets the video prompt.
 *
 * Pinning: with `--providers cuda` each worker gets CUDA_VISIBLE_DEVICES=<its GPU>, which the CUDA
 * runtime honours. onnxruntime's WebGPU provider has no adapter choice and ignores CUDA_VISIBLE_DEVICES, so
 * there each worker runs in its own mount namespace (`unshare -m`, root) in which the other GPUs' device
 * files are replaced by /dev/null: it sees only its GPU. More workers than GPUs share them round-robin
 * (the fallback for a one-GPU machine; `--use-gpus 0` forces it). `--no-pin` leaves every worker on the
 * default GPU.
 *
 * Figures per run: run wall (submit to record, model setup included), search time (the rounds), NFEs/s,
 * efficiency = the workers' busy time (from each worker's Health) / (workers × search time), the share
 * of that busy time inside session.run, the workers' and the coordinator's CPU time, speedup
 * against one worker, latent bytes moved between workers per generation, mean GPU utilisation while
 * the run lasted (nvidia-smi), and whether the selection decisions equal the one-worker run's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import { runSubject } from '../cluster/events.js';
import { STALE_AFTER_MS } from '../cluster/worker-registry.js';
import type { RunRecord } from '../coordinator/run/run-record.js';
import { fetchWorkerHealth } from '../proto/worker-client.js';
import type { HealthReply } from '../proto/worker-service.js';
import { ProcessSet, startNats } from './cluster-processes.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'evosearch.js');
const { values } = parseArgs({
  options: {
    gpus: { type: 'string', default: '1,2,4' },
    models: { type: 'string', default: 'tiny-sd,tiny-video' },
    providers: { type: 'string', default: 'webgpu' },
    threads: { type: 'string', default: '4' },
    repeats: { type: 'string', default: '2' },
    budget: { type: 'string', multiple: true, default: [] },
    seed: { type: 'string', default: '1' },
    'no-pin': { type: 'boolean', default: false },
    'no-kill': { type: 'boolean', default: false },
    /** Every model call of the runs this many rows (`evosearch run --call-rows`): one shape per run. */
    'call-rows': { type: 'string' },
    'use-gpus': { type: 'string' },
    results: { type: 'string' },
  },
});

const PROMPTS: Record<string, string> = {
  image: 'two red circles left of a blue square',
  video: 'a blue square and a green triangle moving up',
};
const counts = values.gpus.split(',').map(Number);
/** Each model's name (the tables' and --budget's key) and bundle folder. */
const models = values.models.split(',').map((entry) => {
  const [name, folder] = entry.includes('=') ? (entry.split('=', 2) as [string, string]) : [entry, resolve(root, 'models', 'bundles', entry)];
  return { name, folder: resolve(folder) };
});
const modelRoots = [resolve(root, 'models', 'bundles'), ...models.map((m) => resolve(m.folder, '..'))];
const repeats = Number(values.repeats);
const budgets = new Map(values.budget.map((b) => b.split('=') as [string, string]));
const pin = !values['no-pin'];

/** The GPUs this host has, by index (nvidia-smi -L); an empty list without nvidia-smi. */
function hostGpus(): number[] {
  const listed = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
  if (listed.status !== 0) return [];
  return listed.stdout.split('\n').filter((l) => l.startsWith('GPU ')).map((l) => Number(/^GPU (\d+)/.exec(l)![1]));
}
const gpus = hostGpus();
if (pin && gpus.length === 0) throw new Error('multi-gpu: no GPU found by nvidia-smi -L; give --no-pin to run the workers unpinned (on CPU: --providers cpu)');
/** The GPUs workers are placed on, round-robin: all of them, or --use-gpus (e.g. 0: every worker shares GPU 0). */
const placeOn = values['use-gpus'] === undefined ? gpus : values['use-gpus'].split(',').map(Number);
for (const g of placeOn) if (!gpus.includes(g)) throw new Error(`multi-gpu: --use-gpus names GPU ${g}, but this host has ${gpus.length === 0 ? 'none' : gpus.join(', ')}`);

/** Resolves with the first stdout line of a child that prints one JSON line once it listens. */
function listeningLine(child: ChildProcess, what: string, log: () => string): Promise<{ address: string }> {
  return Promise.race([
    new Promise<{ address: string }>((resolve) => createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line) as { address: string }))),
    new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before listening: ${log()}`)))),
  ]);
}

interface Proc {
  readonly child: ChildProcess;
  readonly address: string;
  readonly gpu: number | null;
  readonly exited: Promise<void>;
}

async function startProcess(args: string[], what: string, gpu: number | null): Promise<Proc> {
  const command = [process.execPath, bin, ...args];
  // The pinned worker's namespace: every other GPU's device file is /dev/null there.
  const hide = gpu === null ? '' : gpus.filter((g) => g !== gpu).map((g) => `mount --bind /dev/null /dev/nvidia${g} && `).join('');
  const cuda = values.providers.split(',')[0] === 'cuda';
  const child = gpu === null || cuda
    ? spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...(gpu !== null ? { env: { ...process.env, CUDA_VISIBLE_DEVICES: String(gpu) } } : {}) })
    : spawn('unshare', ['-m', 'sh', '-c', `${hide}exec "$@"`, 'sh', ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const { address } = await listeningLine(child, what, () => log);
  return { child, address, gpu, exited };
}

async function stop(procs: readonly Proc[], signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  await Promise.all(procs.map(async (p) => {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
    await p.exited;
  }));
}

/** Mean utilisation per GPU while it runs (nvidia-smi sampling every 200 ms). */
function sampleGpus(): { stop: () => Promise<Record<number, number>> } {
  if (gpus.length === 0) return { stop: async () => ({}) };
  const child = spawn('nvidia-smi', ['--query-gpu=index,utilization.gpu', '--format=csv,noheader,nounits', '-lms', '200'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const sums = new Map<number, { total: number; n: number }>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const [index, util] = line.split(',').map((s) => Number(s.trim()));
    if (!Number.isFinite(index) || !Number.isFinite(util)) return;
    const s = sums.get(index!) ?? { total: 0, n: 0 };
    s.total += util!;
    s.n += 1;
    sums.set(index!, s);
  });
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      return Object.fromEntries([...sums].map(([i, s]) => [i, Math.round(s.total / s.n)]));
    },
  };
}

/** CPU seconds a process has used (user + system, /proc/<pid>/stat at 100 ticks a second); 0 where unreadable. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** What a run decided: compared between worker counts and with the run that lost a worker. */
const decisions = (r: RunRecord) => JSON.stringify({ best: r.best?.candidate, nfe: r.spent.nfe, candidates: r.candidates.map((c) => [c.parents, c.origin]) });
const maxRewardDifference = (a: RunRecord, b: RunRecord) =>
  a.candidates.reduce((m, c, i) => Math.max(m, Math.abs((c.reward ?? 0) - (b.candidates[i]?.reward ?? Number.NaN))), Math.abs((a.best?.reward ?? 0) - (b.best?.reward ?? 0)));

interface RunFigures {
  model: string;
  workers: number;
  gpusUsed: number;
  repeat: number;
  killed: boolean;
  runWallMs: number;
  searchMs: number;
  nfe: number;
  nfePerSecond: number;
  efficiency: number;
  /** Of the workers' busy time, the share inside session.run (the model runtime). */
  inModel: number;
  workerCpuPerBusy: number;
  coordinatorCpuSeconds: number;
  generations: number;
  bytesMovedPerGeneration: number;
  transfers: number;
  lostWorkers: number;
  rebuiltStates: number;
  gpuUtilisation: Record<number, number>;
  bestReward: number | null;
  provider: string;
}

const work = await mkdtemp(join(tmpdir(), 'multi-gpu-'));
const natsProcesses = new ProcessSet();
const nats = await startNats(natsProcesses, join(work, 'nats-store'));
const coordinator = await startProcess(['coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--insecure', '--runs-dir', join(work, 'served'), ...[...new Set(modelRoots)].flatMap((r) => ['--model-root', r]), '--log-level', 'warn'], 'coordinator', null);
const nc = await connectNats(nats.url, 'multi-gpu bench');
const tables: string[] = [];
try {
  for (const { name: model, folder: bundle } of models) {
    const kind = model.includes('video') ? 'video' : 'image';
    const runArgs = ['--model', bundle, '--prompt', PROMPTS[kind]!, '--seed', values.seed, ...(budgets.has(model) ? ['--budget-nfe', budgets.get(model)!] : []), ...(values['call-rows'] !== undefined ? ['--call-rows', values['call-rows']] : [])];
    const rows: RunFigures[] = [];
    const records = new Map<number, RunRecord>();

    const startWorkers = (n: number) =>
      Promise.all(Array.from({ length: n }, (_, i) => {
        const gpu = pin ? placeOn[i % placeOn.length]! : null;
        return startProcess(['worker', '--model', bundle, '--nats', nats.url, '--listen', '127.0.0.1:0', '--insecure', '--providers', values.providers, '--threads', values.threads, '--log-level', 'warn'], `worker ${i} (GPU ${gpu ?? 'default'})`, gpu);
      }));

    const submit = async (workers: Proc[], repeat: number, killAfterFirstRound: boolean): Promise<RunFigures> => {
      const folder = join(work, `${model}-${workers.length}-${repeat}${killAfterFirstRound ? '-kill' : ''}`);
      const before = await Promise.all(workers.map((w) => fetchWorkerHealth(w.address)));
      const cpuBefore = workers.map((w) => cpuSeconds(w.child.pid));
      const coordinatorCpuBefore = cpuSeconds(coordinator.child.pid);
      let killed = false;
      if (killAfterFirstRound) {
        const rounds = nc.subscribe(runSubject('*', 'round'), { max: 1 });
        void (async () => {
          for await (const _ of rounds) {
            workers.at(-1)!.child.kill('SIGKILL');
            killed = true;
          }
        })();
      }
      const sampler = sampleGpus();
      const started = performance.now();
      const client = spawn(process.execPath, [bin, 'run', '--cluster', nats.url, '--insecure', ...runArgs, '--no-progress', '--out', folder], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      client.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((r) => client.once('exit', r));
      const runWallMs = performance.now() - started;
      const gpuUtilisation = await sampler.stop();
      if (code !== 0) throw new Error(`run on ${workers.length} workers of ${model} exited with ${code}: ${stderr.slice(-2000)}`);
      const coordinatorCpuSeconds = cpuSeconds(coordinator.child.pid) - coordinatorCpuBefore;
      const alive = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      const after = await Promise.all(alive.map((w) => fetchWorkerHealth(w.address)));
      const delta = (pick: (h: HealthReply) => number) => after.reduce((sum, h, i) => sum + pick(h) - pick(before[workers.indexOf(alive[i]!)]!), 0);
      const busyMs = delta((h) => h.busyMs);
      const modelMs = delta((h) => h.modelMs);
      const workerCpu = alive.reduce((sum, w) => sum + cpuSeconds(w.child.pid) - cpuBefore[workers.indexOf(w)]!, 0);
      const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as RunRecord;
      if (!killAfterFirstRound && repeat === 0) records.set(workers.length, record);
      const searchMs = record.rounds.reduce((sum, r) => sum + r.ms, 0);
      const generations = new Set(record.rounds.map((r) => r.generation)).size;
      const figures: RunFigures = {
        model,
        workers: workers.length,
        gpusUsed: new Set(workers.map((w) => w.gpu)).size,
        repeat,
        killed,
        runWallMs: Math.round(runWallMs),
        searchMs: Math.round(searchMs),
        nfe: record.spent.nfe,
        nfePerSecond: Math.round(record.spent.nfe / (searchMs / 1000)),
        efficiency: busyMs / (workers.length * searchMs),
        inModel: modelMs / busyMs,
        workerCpuPerBusy: workerCpu / (busyMs / 1000),
        coordinatorCpuSeconds,
        generations,
        bytesMovedPerGeneration: Math.round(record.placement.bytesMoved / generations),
        transfers: record.placement.transfers,
        lostWorkers: record.placement.lostWorkers,
        rebuiltStates: record.placement.rebuiltStates,
        gpuUtilisation,
        bestReward: record.best?.reward ?? null,
        provider: record.workers[0] ?? '',
      };
      const reference = records.get(counts[0]!);
      const same = reference === undefined ? '–' : decisions(record) === decisions(reference) ? 'yes' : 'NO';
      const rewardDiff = reference === undefined ? '–' : maxRewardDifference(record, reference).toExponential(1);
      if (values.results) await appendFile(values.results, `${JSON.stringify({ ...figures, sameDecisions: same, maxRewardDifference: rewardDiff, providers: values.providers, threads: Number(values.threads), pinned: pin, host: `${gpus.length} GPUs, ${cpus().length} cores`, date: new Date().toISOString() })}\n`);
      rows.push(figures);
      const speedup = rows.find((r) => r.workers === counts[0] && !r.killed);
      tables.push(
        `| ${model} | ${figures.workers}${killed ? ' (1 killed)' : ''} | ${figures.gpusUsed} | ${figures.runWallMs} | ${figures.searchMs} | ${figures.nfePerSecond} | ${killed ? '–' : figures.efficiency.toFixed(3)} | ${(100 * figures.inModel).toFixed(0)} | ${figures.workerCpuPerBusy.toFixed(2)} | ${coordinatorCpuSeconds.toFixed(2)} | ${speedup ? (speedup.searchMs / figures.searchMs).toFixed(2) : '–'} | ${(figures.bytesMovedPerGeneration / 1024).toFixed(1)} | ${Object.values(gpuUtilisation).join('/') || '–'} | ${figures.bestReward?.toFixed(4)} | ${same} | ${rewardDiff} |`,
      );
      process.stderr.write(`${tables.at(-1)}\n`);
      return figures;
    };

    for (const n of counts) {
      const workers = await startWorkers(n);
      try {
        for (let r = 0; r < repeats; r++) await submit(workers, r, false);
        if (!values['no-kill'] && n === Math.max(...counts) && n > 1) await submit(workers, repeats, true);
      } finally {
        await stop(workers);
      }
    }
    // A killed worker's registration stays until it goes stale; let it, so the next model starts clean.
    if (!values['no-kill']) await sleep(STALE_AFTER_MS);
  }
} finally {
  await closeNats(nc);
  await stop([coordinator]);
  await natsProcesses.killAll();
  await rm(work, { recursive: true, force: true });
}

console.log(`${basename(bin)} cluster: nats-server + 1 coordinator + 1 worker per GPU (${pin ? `pinned to GPUs ${placeOn.join(',')}` : 'unpinned'}), providers ${values.providers}, ${values.threads} threads per worker; host: ${gpus.length} GPUs, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; ${new Date().toISOString()}`);
console.log('');
console.log('| model | workers | GPUs | run wall ms | search ms | NFE/s | efficiency (busy / workers × search) | % of busy in session.run | worker CPU s per busy s | coordinator CPU s | speedup (search) | KiB moved between workers per generation | GPU util % | best reward | same decisions as 1 worker | max reward diff |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
console.log(tables.join('\n'));
