/**
 * Runs one unit of the benchmark: opens the bundle for the prompt once, runs each search of the unit
 * through the same engine the CLI uses, and measures what it returned.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Dispatcher } from '../../coordinator/engine/dispatcher.js';
import { runSearch } from '../../coordinator/engine/run-search.js';
import { createSearch } from '../../coordinator/engine/create-search.js';
import { needsScoreEmbeddings } from '../../coordinator/run/open-worker-pool.js';
import { InProcessPool } from '../../coordinator/transport/in-process-pool.js';
import { describeSchedule } from '../../config/describe-schedule.js';
import { planRun } from '../../config/plan-run.js';
import type { ComputeCounters, FetchedSample } from '../../proto/commands.js';
import { createSampler } from '../../samplers/index.js';
import { CommandExecutor } from '../../worker/executor.js';
import type { GenerativeModel, RewardModel } from '../../worker/models/generator.js';
import { openModel } from '../../worker/models/load-model.js';
import type { JobUnit, SearchJob, StudyName } from './jobs.js';

/** One search, as a line of the results file. */
export interface SearchResult {
  readonly study: StudyName;
  readonly bundle: string;
  readonly prompt: string;
  readonly promptIndex: number;
  readonly method: SearchJob['method'];
  readonly variant: string;
  readonly budgetNfe: number;
  readonly seed: number;
  /** The schedule the planner chose, as `evosearch plan` prints it. */
  readonly schedule: string;
  /** Compute the search spent (without fetching the final samples for this measurement). */
  readonly spent: ComputeCounters;
  /** Wall time of the search itself, the model already open. */
  readonly wallMs: number;
  /** Guidance reward of the returned sample, and its held-out metrics by name. */
  readonly guidance: number;
  readonly heldOut: Readonly<Record<string, number>>;
  /** Mean squared distance between the unit-normalised embeddings of the final samples, and how many. */
  readonly diversity: number | null;
  readonly finalSamples: number;
  readonly embeddingBy: string | null;
  readonly host: string;
}

/** Final samples fetched for the diversity measure (best first); every method's final set fits. */
const MAX_FINALS = 512;

export interface MeasureOptions {
  readonly bundlesDir: string;
  readonly intraOpThreads?: number;
  readonly onResult: (result: SearchResult) => void;
}

export async function measureUnit(unit: JobUnit, options: MeasureOptions): Promise<void> {
  const folder = join(options.bundlesDir, unit.bundle);
  const model = await openFor(folder, unit.prompt, options.intraOpThreads);
  const embedder = diversityScorer(model);
  try {
    for (const job of unit.jobs) options.onResult(await measureSearch(folder, unit, job, model, embedder));
  } finally {
    await (model as { release?: () => Promise<void> }).release?.();
  }
}

export async function openFor(folder: string, prompt: string, intraOpThreads: number | undefined): Promise<GenerativeModel> {
  const plan = await planRun({ model: folder, prompt, method: 'best-of-n' }, 'benchmark');
  const sampler = createSampler(plan.sampler);
  return openModel(plan.model, {
    prediction: sampler.prediction,
    prompt,
    guidanceScale: plan.guidanceScale,
    ...(intraOpThreads !== undefined ? { intraOpThreads } : {}),
  });
}

/** The held-out scorer's embedding (independent of what the search maximised), else the guidance one's. */
export function diversityScorer(model: GenerativeModel): RewardModel | null {
  const withEmbedding = model.rewards.filter((r) => r.embed !== undefined);
  return withEmbedding.find((r) => r !== model.rewards[0]) ?? withEmbedding[0] ?? null;
}

async function measureSearch(folder: string, unit: JobUnit, job: SearchJob, model: GenerativeModel, embedder: RewardModel | null): Promise<SearchResult> {
  const plan = await planRun({ model: folder, prompt: unit.prompt, method: job.method, budgetNfe: job.budgetNfe, seed: job.seed, ...(job.evosearch ? { evosearch: job.evosearch } : {}) }, 'benchmark');
  const sampler = createSampler(plan.sampler);
  const pool = new InProcessPool([new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize, scoreEmbeddings: needsScoreEmbeddings(plan) })]);
  const started = performance.now();
  const outcome = await runSearch(createSearch(plan, sampler), new Dispatcher(pool), { population: MAX_FINALS });
  const wallMs = performance.now() - started;
  const best = outcome.best === null ? null : outcome.candidates[outcome.best.sampleId]!;
  // The last round's counters: what the search spent before the fetch that hands back its samples.
  const spent = outcome.rounds.at(-1)?.counters ?? outcome.counters;
  return {
    study: job.study,
    bundle: unit.bundle,
    prompt: unit.prompt,
    promptIndex: unit.promptIndex,
    method: job.method,
    variant: job.variant,
    budgetNfe: job.budgetNfe,
    seed: job.seed,
    schedule: describeSchedule(plan, job.method),
    spent: { ...spent },
    wallMs,
    guidance: outcome.best?.reward ?? Number.NaN,
    heldOut: best?.metrics ?? {},
    diversity: embedder === null ? null : await diversity(outcome.population, embedder),
    finalSamples: outcome.population.length,
    embeddingBy: embedder?.name ?? null,
    host: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
  };
}

/** Mean over pairs of |e_i - e_j|² for unit-normalised embeddings e (0: identical; 4: opposite). */
export async function diversity(samples: readonly FetchedSample[], embedder: RewardModel): Promise<number | null> {
  if (samples.length < 2) return null;
  const per = samples[0]!.data.length;
  const batch = new Float32Array(samples.length * per);
  samples.forEach((s, i) => batch.set(s.data, i * per));
  const size = embedder.embeddingSize!;
  const rows = await embedder.embed!(batch, samples.length);
  return meanPairwiseSquaredDistance(rows, samples.length, size);
}

/** Rows are normalised here again, so the measure does not depend on the graph's own normalisation. */
export function meanPairwiseSquaredDistance(rows: Float32Array, count: number, size: number): number {
  const unit = new Float64Array(count * size);
  for (let i = 0; i < count; i++) {
    let norm = 0;
    for (let k = 0; k < size; k++) norm += rows[i * size + k]! ** 2;
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < size; k++) unit[i * size + k] = rows[i * size + k]! * scale;
  }
  // sum_{i<j} |e_i - e_j|² = n Σ|e_i|² - |Σ e_i|², so the mean over pairs costs O(n d).
  const sum = new Float64Array(size);
  let squares = 0;
  for (let i = 0; i < count; i++) {
    for (let k = 0; k < size; k++) {
      const v = unit[i * size + k]!;
      sum[k] = sum[k]! + v;
      squares += v * v;
    }
  }
  const total = count * squares - sum.reduce((a, v) => a + v * v, 0);
  return total / ((count * (count - 1)) / 2);
}
