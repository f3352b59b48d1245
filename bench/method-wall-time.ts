/**
 * Wall time of EvoSearch, Best-of-N and particle sampling at equal NFE budgets, through the embedded
 * run `evosearch run` uses (runSearchToFolder: worker threads, checkpoints, snapshots, record, report), and
 * where that time goes:
 *
 * - timed runs (worker threads, as the CLI starts them), `--repeats` of each, methods interleaved:
 *   wall time, start-up, search, rounds; inside the search the wait for the workers, their time in
 *   session.run, snapshots, checkpoints, bookkeeping, the final fetch; after it the record and the
 *   report outputs.
 * - one instrumented run per method and budget (the same engine over in-process workers whose models
 *   are wrapped; calls are serialised so each is timed alone): every denoiser, decoder and reward call
 *   with its worker, round and batch; the calls on the critical path (per round the busiest worker's,
 *   summed over rounds), time per model, and what the first call at a new batch shape cost (GPU
 *   providers tune kernels per shape). It must give the timed runs' answer, or the table says so.
 * - the critical path counted from the plan alone, to check the measured one.
 *
 * - with `--pad`, the instrumented runs again with every model call padded to one batch size per run:
 *   what a worker that keeps its GPU calls at one shape would spend.
 *
 *   npm run build && node dist/bench/method-wall-time.js [--model models/bundles/tiny-sd] [--prompt "two red circles left of a blue square"]
 *       [--budgets 1000,5000] [--methods evosearch,best-of-n,particles] [--repeats 3] [--providers cpu] [--workers 2]
 *       [--intra-op-threads N] [--seed 0] [--no-breakdown] [--pad] [--results out.jsonl]
 *
 * Prints markdown tables and the ratios EvoSearch / Best-of-N of this run; each run is one JSON line in
 * --results.
 */
import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { planRun } from '../config/plan-run.js';
import type { MethodName, RunPlan } from '../config/resolve-run-config.js';
import { runSearchToFolder, type SearchToFolderResult } from '../coordinator/run/run-search-to-folder.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { ThreadPool } from '../worker/thread-pool.js';
import { resolveParticleConfig } from '../search/particles.js';
import { PRESETS } from '../config/presets.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import type { GenerativeModel } from '../worker/models/generator.js';
import { bundlePath, openModel } from '../worker/models/load-model.js';
import { isProviderName, type ProviderName } from '../worker/runtime/providers.js';

export type ModelPart = 'denoiser' | 'decoder' | 'reward';

/** One model call of the instrumented run. */
export interface ModelCall {
  readonly worker: number;
  /** The search round it belongs to; the rounds' count for the final fetch. */
  readonly round: number;
  readonly part: ModelPart;
  /** Latents (denoiser, decoder) or samples (reward) in the call. */
  readonly batch: number;
  readonly ms: number;
  /** The first call of this worker's model part at this batch size. */
  readonly newShape: boolean;
}

/** Sequential model calls: per round the busiest worker's count, summed over the rounds. */
export function criticalPath(calls: readonly ModelCall[], part?: ModelPart): number {
  const perRoundWorker = new Map<string, number>();
  const rounds = new Map<number, number>();
  for (const call of calls) {
    if (part !== undefined && call.part !== part) continue;
    const key = `${call.round}/${call.worker}`;
    const count = (perRoundWorker.get(key) ?? 0) + 1;
    perRoundWorker.set(key, count);
    rounds.set(call.round, Math.max(rounds.get(call.round) ?? 0, count));
  }
  return [...rounds.values()].reduce((a, b) => a + b, 0);
}

/** Sequential calls of each model part a plan implies, counted from its schedules alone. */
export interface PlannedPath {
  /** Rounds that call a model (a cleanup round that only frees states is not counted). */
  readonly scoringRounds: number;
  readonly denoiserCalls: number;
  /** Decoder calls while searching (each scoring round decodes once per batch), without the final fetch. */
  readonly decoderCalls: number;
}

/**
 * The denoiser calls a worker makes one after another. Every step is one call per batch of the states
 * that worker advances (the dispatcher spreads a round's active states evenly, ceil(K / workers) each),
 * and each round must finish before the search decides the next:
 * - Best-of-N: one round of N steps.
 * - EvoSearch (E = e_0 < ... < e_{G-1}): round 0 advances to e_0 and rolls out to N (N steps); round g
 *   advances the new population from e_{g-1} to e_g and rolls it out (N - e_{g-1}); the final round takes
 *   the last population from e_{G-1} to N. So N + sum_g (N - e_g) in all.
 * - Particles (x0-prediction fitness): N steps; the score at a resampling step computes that step's model
 *   output, which the next step reuses. Rollout fitness adds N - i per resampling step i.
 */
export function plannedPath(plan: RunPlan, workers: number): PlannedPath {
  const steps = plan.sampler.steps;
  const share = (k: number) => Math.ceil(Math.ceil(k / workers) / plan.batchSize);
  if (plan.method === 'evosearch-adaptive') throw new Error('adaptive EvoSearch decides its schedule while it runs, so its critical path cannot be counted from the plan');
  if (plan.method === 'best-of-n') return { scoringRounds: 1, denoiserCalls: steps * share(plan.bestOfN.n), decoderCalls: share(plan.bestOfN.n) };
  if (plan.method === 'evosearch') {
    const { evolutionSchedule: E, populationSchedule: K } = plan.evosearch;
    let denoiser = steps * share(K[0]!);
    let decoder = share(K[0]!);
    for (let g = 1; g <= E.length; g++) {
      denoiser += (steps - E[g - 1]!) * share(K[g]!);
      decoder += share(K[g]!);
    }
    return { scoringRounds: E.length + 1, denoiserCalls: denoiser, decoderCalls: decoder };
  }
  const resolved = resolveParticleConfig({ ...plan.particles, steps, seed: 0 });
  const k = share(plan.particles.particles);
  const rollouts = resolved.fitness === 'rollout' ? resolved.schedule.reduce((a, i) => a + (steps - i), 0) : 0;
  return { scoringRounds: resolved.schedule.length, denoiserCalls: (steps + rollouts) * k, decoderCalls: resolved.schedule.length * k };
}

/** The denoiser's critical path of a preset's EvoSearch schedule against Best-of-N's N steps. */
export function presetPaths(): { preset: string; steps: number; schedule: readonly number[]; evosearch: number; bestOfN: number }[] {
  return Object.values(PRESETS).map((p) => {
    const N = p.sampler.steps;
    const E = p.evosearch.evolutionSchedule;
    return { preset: p.name, steps: N, schedule: E, evosearch: N + E.reduce((a, e) => a + (N - e), 0), bestOfN: N };
  });
}

/**
 * `model` with every denoiser, decoder and reward call timed into `calls`. Calls of all wrapped models
 * go through one queue: in-process workers share this thread, and a call timed while another worker's
 * call runs would count both.
 *
 * With `padTo`, every call is padded with copies of its last row to `padTo` rows (to the next power of
 * two above it when larger): what a worker that keeps its calls at one shape would do. The rows the
 * caller asked for come back; the padding rows are thrown away.
 */
function instrument(model: GenerativeModel, worker: number, round: () => number, calls: ModelCall[], queue: { tail: Promise<unknown> }, padTo: number | null = null): GenerativeModel {
  const seen = new Set<string>();
  const rowsFor = (batch: number) => (padTo === null ? batch : batch <= padTo ? padTo : 2 ** Math.ceil(Math.log2(batch)));
  const timed = <T>(part: ModelPart, batch: number, run: () => T | Promise<T>): Promise<T> => {
    const result = queue.tail.then(async () => {
      const started = performance.now();
      const value = await run();
      const key = `${part}/${batch}`;
      calls.push({ worker, round: round(), part, batch, ms: performance.now() - started, newShape: !seen.has(key) });
      seen.add(key);
      return value;
    });
    queue.tail = result.catch(() => undefined);
    return result;
  };
  /** `call` on `rows` rows of `input` (`size` values each), the last row repeated; the first `batch` rows of its output into `out`. */
  const padded = async <A extends Float32Array | Float64Array>(input: Float32Array, size: number, batch: number, out: A, outSize: number, call: (input: Float32Array, rows: number, out: A) => void | Promise<void>): Promise<void> => {
    const rows = rowsFor(batch);
    if (rows === batch) return call(input, batch, out);
    const wide = new Float32Array(rows * size);
    wide.set(input.subarray(0, batch * size));
    for (let r = batch; r < rows; r++) wide.copyWithin(r * size, (batch - 1) * size, batch * size);
    const wideOut = new (out.constructor as new (n: number) => A)(rows * outSize);
    await call(wide, rows, wideOut);
    out.set(wideOut.subarray(0, batch * outSize) as never);
  };
  const { denoiser: d, decoder: c } = model;
  return {
    ...model,
    id: model.id,
    denoiser: {
      latentSize: d.latentSize,
      latentShape: d.latentShape,
      prediction: d.prediction,
      forwardPassesPerNfe: d.forwardPassesPerNfe,
      predict: (latents, batch, time, out) => timed('denoiser', rowsFor(batch), () => padded(latents, d.latentSize, batch, out, d.latentSize, (x, n, y) => d.predict(x, n, time, y))),
    },
    decoder: {
      sampleSize: c.sampleSize,
      sampleShape: c.sampleShape,
      decode: (latents, batch, out) => timed('decoder', rowsFor(batch), () => padded(latents, d.latentSize, batch, out, c.sampleSize, (x, n, y) => c.decode(x, n, y))),
    },
    rewards: model.rewards.map((r) => ({
      ...r,
      name: r.name,
      score: (samples: Float32Array, batch: number, out: Float64Array) => timed('reward', rowsFor(batch), () => padded(samples, c.sampleSize, batch, out, 1, (x, n, y) => r.score(x, n, y))),
    })),
  };
}

/** Opens the plan's model the way a worker thread does (worker/thread-main.ts). */
async function openAsWorker(plan: RunPlan): Promise<GenerativeModel> {
  const setup = workerSetupFor(plan);
  const sampler = createSampler(setup.sampler);
  return openModel(setup.model, {
    prediction: sampler.prediction,
    providers: (setup.providers ?? ['cpu']) as ProviderName[],
    ...(setup.prompt !== undefined ? { prompt: setup.prompt } : {}),
    ...(setup.negativePrompt !== undefined ? { negativePrompt: setup.negativePrompt } : {}),
    ...(setup.guidanceScale !== undefined ? { guidanceScale: setup.guidanceScale } : {}),
    ...(setup.rewards !== undefined ? { rewards: setup.rewards } : {}),
  });
}

export interface InstrumentedRun {
  readonly result: SearchToFolderResult;
  readonly calls: readonly ModelCall[];
  readonly openMs: number;
}

/**
 * The rows a shape-stable worker would pad every call to: the plan's largest population per worker,
 * rounded up to a power of two (placement and resampling move a few states more onto one worker).
 */
export function stableRows(plan: RunPlan, workers: number): number {
  const largest = plan.method === 'best-of-n' ? plan.bestOfN.n : plan.method === 'evosearch' ? Math.max(...plan.evosearch.populationSchedule) : plan.particles.particles;
  return 2 ** Math.ceil(Math.log2(Math.min(plan.batchSize, Math.ceil(largest / workers))));
}

/** One run of `plan` through runSearchToFolder over in-process workers with timed models (padded with `pad`). */
export async function instrumentedRun(plan: RunPlan, folder: string, pad = false): Promise<InstrumentedRun> {
  const calls: ModelCall[] = [];
  const queue = { tail: Promise.resolve() as Promise<unknown> };
  let round = 0;
  const sampler = createSampler(plan.sampler);
  const opened = performance.now();
  const models = await Promise.all(Array.from({ length: plan.workers }, () => openAsWorker(plan)));
  const openMs = performance.now() - opened;
  const padTo = pad ? stableRows(plan, plan.workers) : null;
  const pool = new InProcessPool(models.map((m, w) => new CommandExecutor(instrument(m, w, () => round, calls, queue, padTo), sampler, BigInt(plan.seed), { batchSize: plan.batchSize })));
  const result = await runSearchToFolder(plan, { folder, logger: pino({ level: 'silent' }), pool, onRound: () => void (round += 1) });
  return { result, calls, openMs };
}

/** What the instrumented run says about one model part. */
export function partSummary(calls: readonly ModelCall[], part: ModelPart) {
  const mine = calls.filter((c) => c.part === part);
  const newShapes = mine.filter((c) => c.newShape);
  const steady = mine.filter((c) => !c.newShape);
  const batches = new Map<number, number>();
  for (const c of mine) batches.set(c.batch, (batches.get(c.batch) ?? 0) + 1);
  const sum = (xs: readonly ModelCall[]) => xs.reduce((a, c) => a + c.ms, 0);
  return {
    calls: mine.length,
    criticalPath: criticalPath(calls, part),
    ms: sum(mine),
    newShapes: newShapes.length,
    newShapeMs: sum(newShapes),
    steadyMsPerCall: steady.length === 0 ? null : sum(steady) / steady.length,
    batches: [...batches].sort((a, b) => a[0] - b[0]),
  };
}

/** Per round of the instrumented run: sequential calls of each part, model time, first-call-at-a-shape time. */
export function roundSummaries(calls: readonly ModelCall[]) {
  const rounds = [...new Set(calls.map((c) => c.round))].sort((a, b) => a - b);
  return rounds.map((round) => {
    const mine = calls.filter((c) => c.round === round);
    const sum = (xs: readonly ModelCall[]) => xs.reduce((a, c) => a + c.ms, 0);
    return {
      round,
      denoiser: criticalPath(mine, 'denoiser'),
      decoder: criticalPath(mine, 'decoder'),
      reward: criticalPath(mine, 'reward'),
      ms: sum(mine),
      newShapeMs: sum(mine.filter((c) => c.newShape)),
    };
  });
}

interface TimedRun {
  readonly method: MethodName;
  readonly budget: number;
  readonly repeat: number;
  readonly wallMs: number;
  readonly result: SearchToFolderResult;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fixed = (x: number | null | undefined, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));

/** The figures of one timed run that the tables show (undefined where this build does not report them). */
function figures(run: TimedRun) {
  const { result } = run;
  const t = result.timing;
  const s = result.outcome.timing;
  return {
    wall: run.wallMs,
    startup: t?.poolMs,
    search: t?.searchMs,
    rounds: result.record.rounds.length,
    waiting: s?.workersMs,
    model: t?.modelMs ?? undefined,
    snapshots: s?.snapshotMs,
    checkpoint: s?.journalMs,
    bookkeeping: s === undefined ? undefined : s.bookkeepingMs + s.thumbnailsMs + s.onRoundMs,
    fetch: s?.fetchMs,
    record: t?.recordMs,
    outputs: t === undefined ? undefined : t.outputsMs + t.cleanupMs,
    close: t?.closeMs,
    checkpointKb: t === undefined ? undefined : (t.checkpointBytes + t.snapshotBytes) / 1024,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'models/bundles/tiny-sd' },
      prompt: { type: 'string', default: 'two red circles left of a blue square' },
      budgets: { type: 'string', default: '1000,5000' },
      methods: { type: 'string', default: 'evosearch,best-of-n,particles' },
      repeats: { type: 'string', default: '3' },
      providers: { type: 'string', default: 'cpu' },
      workers: { type: 'string' },
      /** Threads per onnxruntime session in the workers (default: onnxruntime's, one per core). */
      'intra-op-threads': { type: 'string' },
      seed: { type: 'string', default: '0' },
      'no-breakdown': { type: 'boolean', default: false },
      /** Also run the instrumented runs with every model call padded to one shape per run. */
      pad: { type: 'boolean', default: false },
      results: { type: 'string' },
    },
  });
  const providers = values.providers.split(',');
  for (const p of providers) if (!isProviderName(p)) throw new Error(`method-wall-time: unknown provider '${p}'`);
  const methods = values.methods.split(',') as MethodName[];
  const budgets = values.budgets.split(',').map(Number);
  const repeats = Number(values.repeats);
  const intraOpThreads = values['intra-op-threads'] === undefined ? undefined : Number(values['intra-op-threads']);
  const bundle = bundlePath(values.model) !== null;
  const scratch = await mkdtemp(join(tmpdir(), 'method-wall-time-'));
  const record = async (line: Record<string, unknown>) => {
    if (values.results) await appendFile(values.results, `${JSON.stringify({ ...line, model: values.model, providers, date: new Date().toISOString() })}\n`);
  };
  const planFor = (method: MethodName, budgetNfe: number) =>
    planRun({ model: values.model, method, budgetNfe, seed: Number(values.seed), providers: providers as ProviderName[], ...(bundle ? { prompt: values.prompt } : {}), ...(values.workers ? { workers: Number(values.workers) } : {}) }, 'method-wall-time');
  let folders = 0;
  // A fresh run folder each time, made first as the CLI does.
  const folder = () => {
    const path = join(scratch, `run-${folders++}`);
    return mkdir(path, { recursive: true }).then(() => path);
  };

  const lines: string[] = [];
  const say = (line = '') => {
    lines.push(line);
    process.stderr.write(`${line}\n`);
  };
  say(`method-wall-time: ${values.model}, providers ${providers.join(',')}${intraOpThreads === undefined ? '' : `, ${intraOpThreads} threads per session`}, ${new Date().toISOString()}`);
  say('');
  say('Critical path from the presets\' schedules (denoiser calls one after another, any population up to workers x batch size):');
  say('');
  say('| preset | N | E | EvoSearch | Best-of-N | ratio |');
  say('|---|---|---|---|---|---|');
  for (const p of presetPaths()) say(`| ${p.preset} | ${p.steps} | [${p.schedule.join(',')}] | ${p.evosearch} | ${p.bestOfN} | ${(p.evosearch / p.bestOfN).toFixed(2)} |`);
  try {
    for (const budget of budgets) {
      const plans = new Map<MethodName, RunPlan>();
      for (const method of methods) plans.set(method, await planFor(method, budget));
      // One untimed run first: the page cache, JIT and the provider's own first-use costs.
      await runSearchToFolder(plans.get(methods[0]!)!, { folder: await folder(), logger: pino({ level: 'silent' }) });
      const timed: TimedRun[] = [];
      for (let repeat = 0; repeat < repeats; repeat++) {
        for (const method of methods) {
          const plan = plans.get(method)!;
          const runFolder = await folder();
          const started = performance.now();
          let result: SearchToFolderResult;
          if (intraOpThreads === undefined) {
            result = await runSearchToFolder(plan, { folder: runFolder, logger: pino({ level: 'silent' }) });
          } else {
            // The threads the CLI would start, with the session threads set; started and closed here.
            const pool = await ThreadPool.start(plan.workers, { ...workerSetupFor(plan), intraOpThreads }, { snapshotFolder: join(runFolder, 'snapshots') });
            const poolMs = performance.now() - started;
            try {
              result = await runSearchToFolder(plan, { folder: runFolder, logger: pino({ level: 'silent' }), pool });
            } finally {
              await pool.close();
            }
            result = { ...result, timing: { ...result.timing, poolMs, modelMs: pool.modelMs() } };
          }
          const run = { method, budget, repeat, wallMs: performance.now() - started, result };
          timed.push(run);
          await record({ kind: 'timed', method, budget, repeat, workers: plan.workers, ...figures(run), roundMs: result.record.rounds.map((r) => r.ms), spent: result.record.spent, best: result.record.best?.reward ?? null, timing: result.timing, searchTiming: result.outcome.timing });
        }
      }
      say('');
      say(`### ${budget} NFEs (${plans.get(methods[0]!)!.workers} workers, batch size ${plans.get(methods[0]!)!.batchSize}), median of ${repeats} runs, ms`);
      say('');
      say('| method | rounds | wall | start-up | search | waiting for workers | threads in session.run (sum) | snapshots | checkpoints | bookkeeping | final fetch | record | outputs | close | checkpoint+snapshot KiB |');
      say('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
      const medians = new Map<MethodName, Record<string, number>>();
      for (const method of methods) {
        const runs = timed.filter((r) => r.method === method).map(figures);
        const m: Record<string, number> = {};
        for (const key of Object.keys(runs[0]!) as (keyof (typeof runs)[number])[]) m[key] = median(runs.map((r) => r[key] ?? Number.NaN));
        medians.set(method, m);
        say(`| ${method} | ${m.rounds} | ${fixed(m.wall)} | ${fixed(m.startup)} | ${fixed(m.search)} | ${fixed(m.waiting)} | ${fixed(m.model)} | ${fixed(m.snapshots, 1)} | ${fixed(m.checkpoint, 1)} | ${fixed(m.bookkeeping, 1)} | ${fixed(m.fetch, 1)} | ${fixed(m.record, 1)} | ${fixed(m.outputs, 1)} | ${fixed(m.close, 1)} | ${fixed(m.checkpointKb)} |`);
      }
      const evo = medians.get('evosearch');
      const bon = medians.get('best-of-n');
      if (evo && bon) {
        say('');
        say(`EvoSearch / Best-of-N: wall ${(evo.wall! / bon.wall!).toFixed(2)}, search ${(evo.search! / bon.search!).toFixed(2)}, waiting for workers ${(evo.waiting! / bon.waiting!).toFixed(2)}; EvoSearch's extra wall ${fixed(evo.wall! - bon.wall!)} ms, of it snapshots + checkpoints + bookkeeping + fetch + record + outputs ${fixed(evo.snapshots! + evo.checkpoint! + evo.bookkeeping! + evo.fetch! + evo.record! + evo.outputs! - (bon.snapshots! + bon.checkpoint! + bon.bookkeeping! + bon.fetch! + bon.record! + bon.outputs!))} ms`);
      }
      if (values['no-breakdown']) continue;
      const variants = values.pad ? [false, true] : [false];
      for (const pad of variants) {
        say('');
        say(pad
          ? `Instrumented run with every model call padded to one batch size per run (latents or samples a call: ${methods.map((m) => `${m} ${stableRows(plans.get(m)!, plans.get(m)!.workers)}`).join(', ')}), ${budget} NFEs:`
          : `Instrumented run (in-process workers, model calls timed one at a time), ${budget} NFEs:`);
        say('');
        say('| method | search ms (in-process) | rounds calling a model | denoiser calls on the critical path: planned / measured | denoiser batch sizes (calls) | decoder calls: critical / all | reward calls: critical / all | denoiser ms (steady ms a call) | decoder ms | reward ms | first calls at a new shape: count, ms | same answer as the timed runs |');
        say('|---|---|---|---|---|---|---|---|---|---|---|---|');
        const paths = new Map<MethodName, { planned: number; measured: number; all: number; searchMs: number }>();
        const perRound = new Map<MethodName, (ReturnType<typeof roundSummaries>[number] & { label: string })[]>();
        for (const method of methods) {
          const plan = plans.get(method)!;
          const { result, calls } = await instrumentedRun(plan, await folder(), pad);
          const reference = timed.find((r) => r.method === method)!.result.record;
          const same = JSON.stringify({ best: result.record.best, spent: result.record.spent }) === JSON.stringify({ best: reference.best, spent: reference.spent });
          const d = partSummary(calls, 'denoiser');
          const c = partSummary(calls, 'decoder');
          const r = partSummary(calls, 'reward');
          const planned = plannedPath(plan, plan.workers);
          const scoringRounds = new Set(calls.filter((x) => x.part === 'decoder' && x.round < result.record.rounds.length).map((x) => x.round)).size;
          const searchMs = result.timing?.searchMs ?? Number.NaN;
          paths.set(method, { planned: planned.denoiserCalls, measured: d.criticalPath, all: criticalPath(calls), searchMs });
          const shapes = [d, c, r].reduce((a, p) => ({ n: a.n + p.newShapes, ms: a.ms + p.newShapeMs }), { n: 0, ms: 0 });
          say(`| ${method} | ${fixed(searchMs)} | ${scoringRounds} (planned ${planned.scoringRounds}) | ${planned.denoiserCalls} / ${d.criticalPath} | ${d.batches.map(([b, n]) => `${b}×${n}`).join(' ')} | ${c.criticalPath} / ${c.calls} | ${r.criticalPath} / ${r.calls} | ${fixed(d.ms)} (${fixed(d.steadyMsPerCall, 2)}) | ${fixed(c.ms)} | ${fixed(r.ms)} | ${shapes.n}, ${fixed(shapes.ms)} | ${same ? 'yes' : 'NO'} |`);
          perRound.set(method, roundSummaries(calls).map((x) => ({ ...x, label: result.record.rounds[x.round]?.label ?? 'final fetch' })));
          await record({
            kind: 'instrumented', pad, method, budget, workers: plan.workers, planned, denoiser: d, decoder: c, reward: r, criticalPathAll: criticalPath(calls), same, searchTiming: result.outcome.timing, timing: result.timing,
            rounds: perRound.get(method),
            // [worker, round, part, batch, ms, first call at this shape]
            calls: calls.map((x) => [x.worker, x.round, x.part, x.batch, Math.round(x.ms * 100) / 100, x.newShape ? 1 : 0]),
          });
        }
        if (!pad) {
          say('');
          say('Per round of the instrumented runs: sequential calls (denoiser / decoder / reward), model ms, of it first calls at a new shape:');
          say('');
          say('| method | round | calls | model ms | new-shape ms |');
          say('|---|---|---|---|---|');
          for (const [method, list] of perRound) for (const x of list) say(`| ${method} | ${x.label} | ${x.denoiser} / ${x.decoder} / ${x.reward} | ${fixed(x.ms)} | ${fixed(x.newShapeMs)} |`);
        }
        const e = paths.get('evosearch');
        const b = paths.get('best-of-n');
        if (e && b) {
          say('');
          say(`${pad ? 'Padded: ' : ''}in-process search EvoSearch / Best-of-N = ${(e.searchMs / b.searchMs).toFixed(2)}. Latency-bound prediction (search ≈ sequential calls × per-call latency): ${(e.measured / b.measured).toFixed(2)} counting denoiser calls, ${(e.all / b.all).toFixed(2)} counting every model call on the critical path (${e.all} against ${b.all}).`);
        }
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

// Imported by the tests for its counting functions; run as a program, it measures.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  await main();
}
