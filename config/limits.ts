/**
 * Limits a plan is checked against before any work starts (resolve-run-config.ts calls them while it
 * resolves a plan, `evosearch worker` and `resume` for their own flags): the memory the plan will need
 * on this machine, the threads it starts, and sizes that must fit V8's arrays, maps and strings. A plan
 * past a limit fails at once with a LimitError (code 'limit', exit 4) that names the limit, the value
 * asked and the flag or config field that changes it, instead of a heap out-of-memory abort, an
 * `Invalid array length` or thousands of threads minutes later.
 *
 * The memory figures are estimates, calibrated on this project's runs (analytic:gmm and tiny-sd on
 * Node 20, 2026-12): the smallest `--max-old-space-size` each of EvoSearch, Best-of-N and particle
 * sampling ran in at 1-6 million NFEs lies 15-35 % under `coordinatorHeapBytes` of its plan, so a plan
 * that passes runs, and one refused would have needed most of what it was refused for.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LimitError } from '../errors/limit-error.js';
import { checkThreadCount, hostResources, type HostResources } from '../worker/runtime/host-limits.js';
import { parseAnalyticModelSpec } from '../worker/models/analytic-gmm-config.js';
import { bundlePath } from '../worker/models/load-model.js';
import type { RunPlan } from './run-plan.js';
import { initialAdaptiveSchedule } from './adaptive-plan.js';

// ---------------------------------------------------------------------------------------------------
// Sizes the runtime cannot go past, whatever the memory

/** V8's longest string (2^29 - 24 characters on 64-bit Node 20): record.json is one JSON.stringify. */
export const MAX_STRING_LENGTH = 2 ** 29 - 24;
/** V8's largest Map or Set (2^24 entries): the live states are keyed by candidate id in several. */
export const MAX_MAP_SIZE = 2 ** 24;

// ---------------------------------------------------------------------------------------------------
// Memory

/**
 * Coordinator heap per candidate of the lineage (its record, noise ranges, placement, the line it takes
 * in record.json while that is written) and per evaluation (reward, metrics, the round's results and
 * their journal line): fitted to the smallest heap each method ran in, with a margin (see the top).
 */
export const HEAP_PER_CANDIDATE = 1.6 * 1024;
export const HEAP_PER_EVALUATION = 1.2 * 1024;
/** The coordinator's heap before any candidate: modules, the plan, the logger. */
export const HEAP_BASE = 32 * 2 ** 20;
/** record.json characters per candidate (measured 390-520 on analytic:gmm and tiny-sd; more metrics, more). */
export const RECORD_CHARS_PER_CANDIDATE = 560;
/** A worker's bookkeeping per state (the state object, its map entry, the typed arrays' headers). */
export const STATE_OVERHEAD = 320;
/** A worker thread's heap and resident memory before any state (its isolate, the model's JS side). */
export const THREAD_BASE = 48 * 2 ** 20;
/** V8 keeps typed arrays of at most this many bytes on the heap (typed_array_max_size_in_heap). */
const ON_HEAP_TYPED_ARRAY = 64;
/** The share of the heap limit, and of the machine's memory, a plan may be estimated to use. */
export const HEAP_SHARE = 0.85;
export const MEMORY_SHARE = 0.8;
/** Resident memory per byte of live heap (GC headroom), measured 1.6-1.9 on the runs above. */
const RESIDENT_PER_HEAP_BYTE = 2;

/** What a plan will hold at its largest, and what that costs. */
export interface MemoryEstimate {
  /** Candidates of the lineage the coordinator keeps (every one is in record.json). */
  readonly candidates: number;
  /** Evaluations (reward calls) recorded. */
  readonly evaluations: number;
  /** States alive on the workers at once, at most. */
  readonly liveStates: number;
  /** The largest population of one round (K_g, n or k). */
  readonly population: number;
  /** Floats of one latent, where the model says (null: unknown, only the bookkeeping is counted). */
  readonly latentFloats: number | null;
  /** Floats a worker keeps per state: the latent, solver memory, a cached model output. */
  readonly floatsPerState: number | null;
  readonly coordinatorHeap: number;
  readonly recordChars: number;
  /** Local worker threads only (undefined: the workers are other processes). */
  readonly workerThreadHeap: number | undefined;
  /** This process's resident memory: coordinator and local worker threads with their latents. */
  readonly processMemory: number;
}

/**
 * The floats of one latent of `model`, where that is known without opening it: the analytic model's
 * dimension, a bundle's `_evosearch.latent_shape` (model_index.json) or its denoiser config
 * (in_channels x sample_size^2, x num_frames for video). null when not known.
 */
export function latentFloatsOf(model: string): number | null {
  if (model.startsWith('analytic:')) {
    try {
      return parseAnalyticModelSpec(model).dimension;
    } catch {
      return null;
    }
  }
  const folder = bundlePath(model);
  if (folder === null) return null;
  const readJson = (file: string): Record<string, unknown> | null => {
    try {
      const value = JSON.parse(readFileSync(join(folder, file), 'utf8')) as unknown;
      return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  };
  const own = readJson('model_index.json')?._evosearch as { latent_shape?: unknown; frames?: unknown } | undefined;
  if (Array.isArray(own?.latent_shape) && own.latent_shape.length > 0 && own.latent_shape.every((d) => Number.isInteger(d) && d > 0)) {
    const frames = Number.isInteger(own.frames) && (own.frames as number) > 1 && own.latent_shape.length === 3 ? (own.frames as number) : 1;
    return (own.latent_shape as number[]).reduce((a, b) => a * b, frames);
  }
  for (const denoiser of ['unet', 'transformer']) {
    const config = readJson(join(denoiser, 'config.json'));
    if (config === null) continue;
    const channels = typeof config.in_channels === 'number' ? config.in_channels : 4;
    const size = config.sample_size;
    const [h, w] = typeof size === 'number' ? [size, size] : Array.isArray(size) && size.length === 2 ? (size as number[]) : [NaN, NaN];
    if (!(Number.isInteger(h) && Number.isInteger(w) && h! > 0 && w! > 0)) return null;
    const frames = typeof config.num_frames === 'number' && config.num_frames > 1 ? config.num_frames : 1;
    return channels * h! * w! * frames;
  }
  return null;
}

/** Candidates, evaluations, live states and the largest population of the plan's chosen method. */
function planCounts(plan: RunPlan): { candidates: number; evaluations: number; liveStates: number; population: number } {
  const evaluations = plan.planned[plan.method].rewardCalls;
  if (plan.method === 'best-of-n') {
    const n = plan.bestOfN.n;
    return { candidates: n, evaluations, liveStates: n, population: n };
  }
  if (plan.method === 'particles') {
    const k = plan.particles.particles;
    const rollout = plan.particles.fitness === 'rollout';
    // k initial particles, then at each scored index at most k copies (and k rollout finals).
    return { candidates: evaluations * (rollout ? 2 : 1), evaluations, liveStates: k * (rollout ? 3 : 2), population: k };
  }
  const { archive, elites } = plan.evosearch;
  if (plan.method === 'evosearch-adaptive') {
    // Its schedule is decided as it runs: counted as the schedule it starts with, every population
    // doubled (a generation that explores takes twice its share), and at least as many evaluations as planned.
    const start = initialAdaptiveSchedule(plan);
    const counts = evolutionCounts(start.evolutionSchedule, start.populationSchedule.map((k) => 2 * k), archive, elites, 0);
    return { ...counts, evaluations: Math.max(evaluations, counts.evaluations) };
  }
  return evolutionCounts(plan.evosearch.evolutionSchedule, plan.evosearch.populationSchedule, archive, elites, evaluations);
}

/** EvoSearch's counts for a schedule (evaluations: the planned reward calls, or 0 to count them here). */
function evolutionCounts(E: readonly number[], K: readonly number[], archive: boolean, elites: number, planned: number): { candidates: number; evaluations: number; liveStates: number; population: number } {
  const evaluations = planned > 0 ? planned : K.reduce((a, k) => a + k, 0);
  if (E.length === 0) return { candidates: K[0]!, evaluations, liveStates: K[0]!, population: K[0]! };
  const G = E.length;
  // The lineage (evosearch.ts): K_0 initial, per generation K_g rollout finals, K_g archive entries per
  // later generation, and K_{g+1} - elites mutated children.
  let candidates = K[0]!;
  let live = 0;
  let before = 0;
  for (let g = 0; g < G; g++) {
    const later = archive ? G - 1 - g : 0;
    candidates += K[g]! * (1 + later) + Math.max(0, K[g + 1]! - Math.min(elites, K[g + 1]!));
    before += K[g]!;
    // At generation g: its individuals and their rollout finals, the archive entries still waiting for
    // later generations and those of this one (in the pool), and the next population being made.
    const waiting = archive ? before * (G - 1 - g) + (before - K[g]!) : 0;
    live = Math.max(live, 2 * K[g]! + waiting + K[g + 1]!);
  }
  return { candidates, evaluations, liveStates: live, population: Math.max(...K) };
}

/** The memory the plan will need at its largest, on this machine's terms. */
export function estimatePlanMemory(plan: RunPlan, latentFloats: number | null = latentFloatsOf(plan.model)): MemoryEstimate {
  const counts = planCounts(plan);
  const coordinatorHeap = HEAP_BASE + counts.candidates * HEAP_PER_CANDIDATE + counts.evaluations * HEAP_PER_EVALUATION;
  const recordChars = counts.candidates * RECORD_CHARS_PER_CANDIDATE;
  // A state holds its latent, the multistep solver's previous x0 (SDE DPM-Solver++), and the model
  // output a particle's one-step x0 score paid for (worker/state-store.ts).
  const copies = 1 + (plan.sampler.kind === 'flow-sde-dpmpp' ? 1 : 0) + (plan.method === 'particles' && plan.particles.fitness === 'x0-prediction' ? 1 : 0);
  const floatsPerState = latentFloats === null ? null : latentFloats * copies;
  const local = plan.workersAt === undefined && plan.cluster === undefined;
  let workerThreadHeap: number | undefined;
  let processMemory = coordinatorHeap * RESIDENT_PER_HEAP_BYTE;
  if (local) {
    const share = Math.ceil(counts.liveStates / Math.max(1, plan.workers));
    const latentBytes = latentFloats === null ? 0 : latentFloats * 4;
    const onHeap = latentBytes <= ON_HEAP_TYPED_ARRAY ? latentBytes * copies : 0;
    const offHeap = latentBytes > ON_HEAP_TYPED_ARRAY ? latentBytes * copies : 0;
    workerThreadHeap = THREAD_BASE + share * (STATE_OVERHEAD + onHeap);
    processMemory += plan.workers * (workerThreadHeap * RESIDENT_PER_HEAP_BYTE) + counts.liveStates * offHeap;
  }
  return { ...counts, latentFloats, floatsPerState, coordinatorHeap, recordChars, workerThreadHeap, processMemory };
}

/** What set the sizes of a plan: the flag and config field a user changes to change them. */
export interface PlanDriver {
  /** e.g. '--budget-nfe'. */
  readonly flag: string;
  /** e.g. 'budgetNfe'. */
  readonly field: string;
  /** The value asked, as the message shows it. */
  readonly value: string;
  /** When the sizes scale with this number (a budget, a sample count), the largest that fits is suggested. */
  readonly scale?: number;
}

export interface PlanLimitContext {
  readonly driver: PlanDriver;
  readonly host?: HostResources;
  /** Overrides what latentFloatsOf(plan.model) reads. */
  readonly latentFloats?: number | null;
}

/** One limit a plan is measured against: its cost, what is allowed, and what the message says. */
interface Bound {
  readonly limit: string;
  readonly cost: number;
  readonly allowed: number;
  /** The part of the cost that does not scale with the plan's size. */
  readonly fixed: number;
  /** The sentence after "--flag value makes <method>'s plan (<sizes>)", up to the remedy. */
  readonly says: () => string;
  /** Remedies besides lowering the driving flag. */
  readonly also?: string;
}

/**
 * Refuses a plan whose chosen method will not fit: its live states past V8's largest Map, its run
 * record past V8's longest string, its memory past the heap limit or the machine's memory. The error
 * names the limit that binds hardest, the flag or config field that set the sizes, and (when the sizes
 * scale with it) the largest value of that flag that fits every limit.
 */
export function checkPlanLimits(plan: RunPlan, context: PlanLimitContext): MemoryEstimate {
  const host = context.host ?? hostResources();
  const e = estimatePlanMemory(plan, context.latentFloats === undefined ? latentFloatsOf(plan.model) : context.latentFloats);
  const heapAllowed = host.heapLimit * HEAP_SHARE;
  const memoryAllowed = host.totalMemory * MEMORY_SHARE;
  const pct = (share: number) => `${Math.round(share * 100)} %`;
  const bounds: Bound[] = [
    {
      limit: 'population', cost: e.liveStates, allowed: MAX_MAP_SIZE, fixed: 0,
      says: () => `hold up to ${fmt(e.liveStates)} states at once, past ${fmt(MAX_MAP_SIZE)} (the most entries a JavaScript Map holds; the states are kept in maps by candidate id)`,
    },
    {
      limit: 'run record', cost: e.recordChars, allowed: MAX_STRING_LENGTH, fixed: 0,
      says: () => `keep ${fmt(e.candidates)} candidates, about ${bytes(e.recordChars)} of record.json, past ${bytes(MAX_STRING_LENGTH)} (the longest string V8 makes; the record is written as one JSON text)`,
    },
    {
      limit: 'memory', cost: e.coordinatorHeap, allowed: heapAllowed, fixed: HEAP_BASE,
      says: () => `keep ${fmt(e.candidates)} candidates and ${fmt(e.evaluations)} evaluations, about ${bytes(e.coordinatorHeap)} of JavaScript heap, past ${pct(HEAP_SHARE)} of this process's heap limit of ${bytes(host.heapLimit)} (v8 heap_size_limit)`,
      also: `raise the heap limit with NODE_OPTIONS=--max-old-space-size=<MiB> (about ${Math.ceil(e.coordinatorHeap / HEAP_SHARE / 2 ** 20).toLocaleString('en-US')} for this plan)`,
    },
  ];
  if (e.workerThreadHeap !== undefined) {
    bounds.push({
      limit: 'memory', cost: e.workerThreadHeap, allowed: heapAllowed, fixed: THREAD_BASE,
      says: () => `hold up to ${fmt(e.liveStates)} states at once on ${plan.workers} worker thread${plan.workers === 1 ? '' : 's'}, about ${bytes(e.workerThreadHeap!)} of heap each, past ${pct(HEAP_SHARE)} of a thread's heap limit of ${bytes(host.heapLimit)}`,
      also: 'spread the states over more worker threads (--workers) or worker processes (--workers-at, --cluster)',
    });
  }
  const latent = e.floatsPerState === null ? '' : `, ${bytes(e.floatsPerState * 4)} per state (latents of ${fmt(e.latentFloats!)} floats)`;
  bounds.push({
    limit: 'memory', cost: e.processMemory, allowed: memoryAllowed, fixed: 0,
    says: () => `hold up to ${fmt(e.liveStates)} states at once${latent}: about ${bytes(e.processMemory)} in this process, past ${pct(MEMORY_SHARE)} of this machine's ${bytes(host.totalMemory)} of memory (os.totalmem())`,
    ...(e.workerThreadHeap !== undefined ? { also: 'run the workers on other machines (`evosearch worker` with --workers-at or --cluster)' } : {}),
  });
  const past = bounds.filter((b) => b.cost > b.allowed);
  if (past.length === 0) return e;
  // The limit that binds hardest is named; the suggested value fits all of them.
  const ratio = (b: Bound) => (b.allowed - b.fixed) / Math.max(1, b.cost - b.fixed);
  const worst = past.reduce((a, b) => (ratio(b) < ratio(a) ? b : a));
  const { driver } = context;
  const fits = driver.scale === undefined ? null : largestFitting(driver.scale, Math.min(...bounds.map(ratio)));
  const archive = (plan.method === 'evosearch' || plan.method === 'evosearch-adaptive') && plan.evosearch.archive && plan.evosearch.evolutionSchedule.length > 1 ? 'keep fewer candidates with --no-archive (evosearch.archive: false)' : null;
  const remedies = [
    `lower ${driver.flag} (config field ${driver.field})${fits !== null ? ` to at most about ${fits.toLocaleString('en-US')}` : ''}`,
    ...(archive !== null ? [archive] : []),
    ...(worst.also !== undefined ? [worst.also] : []),
  ];
  throw new LimitError(worst.limit, `${driver.flag} ${driver.value} makes ${METHOD_LABELS[plan.method]}'s plan (${describeSizes(plan)}) ${worst.says()}; ${remedies.slice(0, -1).join(', ')}${remedies.length > 1 ? ', or ' : ''}${remedies[remedies.length - 1]}`);
}

/** `scale` times `ratio`, rounded down to two significant digits (null: not even 1). */
function largestFitting(scale: number, ratio: number): number | null {
  const raw = Math.floor(scale * ratio);
  if (!(raw >= 1)) return null;
  const digits = 10 ** Math.max(0, Math.floor(Math.log10(raw)) - 1);
  return Math.floor(raw / digits) * digits;
}

const METHOD_LABELS = { evosearch: 'EvoSearch', 'best-of-n': 'Best-of-N', particles: 'particle sampling', 'evosearch-adaptive': 'adaptive EvoSearch' } as const;

function describeSizes(plan: RunPlan): string {
  if (plan.method === 'best-of-n') return `n = ${fmt(plan.bestOfN.n)} samples`;
  if (plan.method === 'particles') return `k = ${fmt(plan.particles.particles)} particles`;
  const adaptive = plan.method === 'evosearch-adaptive';
  const K = adaptive ? initialAdaptiveSchedule(plan).populationSchedule : plan.evosearch.populationSchedule;
  const shown = K.length > 6 ? [...K.slice(0, 5).map(String), '...'] : K.map(String);
  return `${adaptive ? 'starting populations' : 'populations'} [${shown.join(', ')}]`;
}

function fmt(n: number): string {
  return Number.isSafeInteger(n) ? n.toLocaleString('en-US') : n.toExponential(2);
}

/** Bytes as a user reads them: 512 MiB, 4.0 GiB, 1.4 TiB. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit >= 3 ? `${value.toFixed(1)} ${units[unit]}` : `${Math.round(value)} ${units[unit]}`;
}
