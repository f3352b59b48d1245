import type { FetchedSample } from '../../proto/commands.js';
import type { LineageOp, LineageStep, PromptReport, SampleData } from '../../report/report-data.js';
import type { SearchOutcome } from '../engine/run-search.js';
import type { CandidateRecord } from '../../search/lineage.js';
import { summarizeRounds, type RunRecord } from './run-record.js';
import { scoredSamples } from '../../report/held-out-check.js';

/** Images and videos can be shown; the analytic model's vectors cannot. */
function picture(sample: FetchedSample | null | undefined): SampleData | null {
  return sample !== null && sample !== undefined && sample.shape.length >= 3 ? { data: sample.data, shape: [...sample.shape] } : null;
}

const OPS: Record<CandidateRecord['origin']['op'], LineageOp> = {
  init: 'init',
  'mutate-xT': 'mutate-xT',
  'mutate-sde': 'mutate-sde',
  archive: 'archive',
  copy: 'copy',
  'rollout-final': 'rollout',
};

/**
 * The winner's ancestry from x_T to the sample (each node with its latest evaluation). Each ancestor is followed by the rollouts that scored
 * it (an elite is scored once per generation it lives through), each with its reward and thumbnail.
 */
export function winnerLineage(outcome: SearchOutcome): LineageStep[] {
  if (outcome.best === null) return [];
  const { candidates, thumbnails } = outcome;
  const chain: CandidateRecord[] = [];
  for (let id: number | undefined = outcome.best.sampleId; id !== undefined; id = candidates[id]!.parents[0]) chain.unshift(candidates[id]!);
  const onChain = new Set(chain.map((c) => c.id));
  const rolloutsOf = new Map<number, CandidateRecord[]>();
  for (const c of candidates) {
    if (c.origin.op !== 'rollout-final' || onChain.has(c.id)) continue;
    const list = rolloutsOf.get(c.parents[0]!) ?? [];
    list.push(c);
    rolloutsOf.set(c.parents[0]!, list);
  }
  const step = (node: CandidateRecord): LineageStep => ({
    id: node.id,
    op: OPS[node.origin.op],
    generation: node.generation,
    step: node.createdAt,
    reward: node.reward ?? null,
    thumbnail: picture(thumbnails.get(node.id)?.at(-1)),
  });
  return chain.flatMap((node) => [step(node), ...(rolloutsOf.get(node.id) ?? []).map(step)]);
}

/** What the report writers need from one finished search. */
export function promptReport(record: RunRecord, outcome: SearchOutcome): PromptReport {
  const bestSample = picture(outcome.bestSample);
  return {
    prompt: record.plan.prompt ?? null,
    method: record.plan.method,
    model: record.plan.model,
    budgetNfe: record.plan.budgetNfe,
    spent: record.spent,
    wallMs: record.wallMs,
    bytesMoved: record.placement.bytesMoved,
    best: { reward: record.best?.reward ?? Number.NaN, metrics: { ...(record.best?.metrics ?? {}) }, sample: bestSample },
    scored: scoredSamples(outcome.candidates),
    rounds: summarizeRounds(outcome).map(({ label, generation, bestReward, populationMean, populationMax }) => ({ label, generation, bestReward, populationMean, populationMax })),
    population: outcome.population.flatMap((s) => {
      const sample = picture(s);
      return sample === null ? [] : [{ id: s.id, reward: outcome.candidates[s.id]!.reward ?? Number.NaN, sample }];
    }),
    lineage: winnerLineage(outcome),
  };
}
