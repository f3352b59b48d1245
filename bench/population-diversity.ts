/**
 * How diverse EvoSearch's population stays, generation by generation (issue 20): on the shipped bundles
 * and a few held-out prompts, runs EvoSearch in-process (the engine the CLI uses, as
 * bench/search-quality/measure.ts does) with the default tournament and with fitness sharing, and
 * reports per generation the diversity of the population's rollout samples (mean squared distance of
 * the guidance reward's unit embeddings, which the scores carry), the distinct x_T ancestors and
 * distinct parents, the share of children bred from the pool's single best candidate, and the winner
 * ranks of the tournaments; then the final population's diversity by the held-out scorer (the
 * search-quality report's measure) and the returned sample's guidance reward.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/population-diversity.js --prompts 3 --out runs/population-diversity.jsonl
 */
import { Command } from 'commander';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { planRun } from '../config/plan-run.js';
import type { Command as WorkerCommand, CommandResult, CandidateId } from '../proto/commands.js';
import { createSampler } from '../samplers/index.js';
import { EvoSearch, type EvoSelection } from '../search/evosearch.js';
import type { CandidateRecord } from '../search/lineage.js';
import { CommandExecutor } from '../worker/executor.js';
import { diversity, diversityScorer, meanPairwiseSquaredDistance, openFor } from './search-quality/measure.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** One generation's population, as this benchmark describes it. */
interface GenerationFigures {
  readonly generation: number;
  readonly size: number;
  /** Of the population's rollout samples (the final population's own samples for the last row). */
  readonly diversity: number;
  readonly ancestors: number;
  /** Distinct tournament winners that bred this generation's children (null for generation 0). */
  readonly parents: number | null;
  /** Share of the children whose parent was the best candidate of the pool they were chosen from. */
  readonly fromBest: number | null;
  /** Share of tournaments won by raw ranks 0, 1, and 2 or worse of that pool. */
  readonly winnerRanks: readonly [number, number, number] | null;
}

interface SearchFigures {
  readonly bundle: string;
  readonly prompt: string;
  readonly seed: number;
  readonly selection: EvoSelection;
  readonly nfe: number;
  readonly guidance: number;
  readonly finalDiversityHeldOut: number | null;
  readonly generations: readonly GenerationFigures[];
}

/** A pool that remembers every score's embedding by candidate id, the latest one kept. */
class RecordingPool extends InProcessPool {
  readonly embeddings = new Map<CandidateId, Float32Array>();
  readonly rollouts: CandidateId[][] = [];
  finals: CandidateId[] = [];

  override async execute(index: number, commands: readonly WorkerCommand[], onSpent?: (nfe: number) => void, signal?: AbortSignal): Promise<CommandResult[]> {
    const results = await super.execute(index, commands, onSpent, signal);
    for (const result of results) {
      if (result.scores.length === 0) continue;
      for (const score of result.scores) if (score.embedding !== undefined) this.embeddings.set(score.id, score.embedding);
      const ids = result.scores.map((s) => s.id);
      if (result.kind === 'rollout') this.rollouts.push(ids);
      else if (result.kind === 'advance') this.finals = ids;
    }
    return results;
  }
}

function embeddingDiversity(ids: readonly CandidateId[], embeddings: ReadonlyMap<CandidateId, Float32Array>): number {
  const rows = ids.map((id) => embeddings.get(id)!);
  const size = rows[0]!.length;
  const flat = new Float32Array(rows.length * size);
  rows.forEach((r, i) => flat.set(r, i * size));
  return meanPairwiseSquaredDistance(flat, rows.length, size);
}

/** The x_T a candidate descends from: follow first parents back to an init. */
function ancestorOf(id: CandidateId, candidates: readonly CandidateRecord[]): CandidateId {
  let record = candidates[id]!;
  while (record.origin.op !== 'init') record = candidates[record.parents[0]!]!;
  return record.id;
}

async function measure(bundle: string, prompt: string, seed: number, selection: EvoSelection): Promise<SearchFigures> {
  const folder = join(root, 'models', 'bundles', bundle);
  const model = await openFor(folder, prompt, 2);
  try {
    const plan = await planRun({ model: folder, prompt, method: 'evosearch', seed, evosearch: { selection } }, 'benchmark');
    const sampler = createSampler(plan.sampler);
    // Embeddings with every score for both selections: the default tournament never reads them, so its
    // answer is the default's; they only let this benchmark measure each generation.
    const pool = new RecordingPool([new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize, scoreEmbeddings: true })]);
    const machine = createSearch(plan, sampler) as EvoSearch;
    const outcome = await runSearch(machine, new Dispatcher(pool), { population: 512 });
    const candidates = outcome.candidates;
    const selections = machine.selections();
    const populations = [...pool.rollouts, pool.finals];
    const generations = populations.map((ids, g): GenerationFigures => {
      const bred = g === 0 ? null : selections[g - 1]!;
      const ranks = bred === null ? null : bred.winners.map((w) => bred.ranked.indexOf(w));
      const share = (f: (r: number) => boolean) => (ranks === null ? 0 : ranks.filter(f).length / Math.max(1, ranks.length));
      return {
        generation: g,
        size: ids.length,
        diversity: embeddingDiversity(ids, pool.embeddings),
        ancestors: new Set(ids.map((id) => ancestorOf(id, candidates))).size,
        parents: bred === null ? null : new Set(bred.winners).size,
        fromBest: bred === null ? null : share((r) => r === 0),
        winnerRanks: ranks === null ? null : [share((r) => r === 0), share((r) => r === 1), share((r) => r >= 2)],
      };
    });
    const heldOut = diversityScorer(model);
    return {
      bundle,
      prompt,
      seed,
      selection,
      nfe: (outcome.rounds.at(-1)?.counters ?? outcome.counters).nfe,
      guidance: outcome.best?.reward ?? Number.NaN,
      finalDiversityHeldOut: heldOut === null ? null : await diversity(outcome.population, heldOut),
      generations,
    };
  } finally {
    await (model as { release?: () => Promise<void> }).release?.();
  }
}

function prompts(kind: 'image' | 'video', count: number): string[] {
  const all = readFileSync(join(root, 'bench', 'prompts', `heldout-${kind}.txt`), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
  return all.slice(0, count);
}

const mean = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
const f3 = (x: number) => x.toFixed(3);

/** A markdown table per bundle and selection: each generation's figures, averaged over prompts and seeds. */
function table(results: readonly SearchFigures[]): string {
  const out: string[] = [];
  const keys = [...new Set(results.map((r) => `${r.bundle}|${r.selection}`))];
  for (const key of keys) {
    const [bundle, selection] = key.split('|');
    const rows = results.filter((r) => r.bundle === bundle && r.selection === selection);
    out.push(`\n**${bundle}, selection ${selection}** (${rows.length} searches, ${rows[0]!.nfe} NFEs each): guidance reward of the answer ${f3(mean(rows.map((r) => r.guidance)))}, final-population diversity by the held-out scorer ${rows.every((r) => r.finalDiversityHeldOut !== null) ? f3(mean(rows.map((r) => r.finalDiversityHeldOut!))) : 'n/a'}\n`);
    out.push('| generation | population | diversity (guidance emb.) | distinct x_T ancestors | distinct parents | children of the pool\'s best | winner rank 0 / 1 / ≥2 |');
    out.push('|---|---|---|---|---|---|---|');
    const count = rows[0]!.generations.length;
    for (let g = 0; g < count; g++) {
      const at = rows.map((r) => r.generations[g]!);
      const label = g === count - 1 ? `final` : String(g);
      const bred = at[0]!.parents !== null;
      out.push(`| ${label} | ${at[0]!.size} | ${f3(mean(at.map((x) => x.diversity)))} | ${mean(at.map((x) => x.ancestors)).toFixed(1)} | ${bred ? mean(at.map((x) => x.parents!)).toFixed(1) : '—'} | ${bred ? `${(100 * mean(at.map((x) => x.fromBest!))).toFixed(0)}%` : '—'} | ${bred ? [0, 1, 2].map((k) => `${(100 * mean(at.map((x) => x.winnerRanks![k]!))).toFixed(0)}%`).join(' / ') : '—'} |`);
    }
  }
  return out.join('\n');
}

const program = new Command('population-diversity')
  .option('--bundles <list>', 'bundles under models/bundles', 'tiny-sd,tiny-flux,tiny-video')
  .option('--prompts <n>', 'held-out prompts per bundle (the first n)', '3')
  .option('--seeds <n>', 'seeds 1..n', '1')
  .option('--selections <list>', 'selections to compare', 'tournament,sharing')
  .option('--out <file>', 'append one JSON line per search here')
  .parse();
const o = program.opts<{ bundles: string; prompts: string; seeds: string; selections: string; out?: string }>();
const results: SearchFigures[] = [];
for (const bundle of o.bundles.split(',')) {
  const kind = bundle.includes('video') ? 'video' : 'image';
  for (const prompt of prompts(kind, Number(o.prompts))) {
    for (let seed = 1; seed <= Number(o.seeds); seed++) {
      for (const selection of o.selections.split(',') as EvoSelection[]) {
        const figures = await measure(bundle, prompt, seed, selection);
        results.push(figures);
        if (o.out !== undefined) appendFileSync(o.out, `${JSON.stringify(figures)}\n`);
        process.stderr.write(`${bundle} '${prompt}' seed ${seed} ${selection}: guidance ${f3(figures.guidance)}, final diversity ${f3(figures.generations.at(-1)!.diversity)}\n`);
      }
    }
  }
}
process.stdout.write(`${table(results)}\n`);
