/**
 * Do the held-out metrics agree with the guidance reward about the winner?
 *
 * The search picks its winner by the guidance reward alone; the held-out metrics (other judges of the
 * same samples, never used for guidance, all higher-is-better: scores, hit rates, log-densities) say
 * whether that preference is shared. A winner the guidance reward ranks first while a held-out judge
 * ranks it among the worse half of what the run produced is the classic sign of the search exploiting
 * the guidance reward (reward hacking) rather than making a better sample.
 *
 * Precisely: the reference set S is every sample the run scored in full (scoredSamples: one entry per
 * decoded x0 whose guidance reward was computed). For each held-out metric m the winner has, and that
 * at least MIN_SAMPLES members of S have, let `higher` be the number of members of S whose m is
 * strictly greater than the winner's. The winner DISAGREES on m when higher > |S_m| / 2: its m is below
 * the median of S (ties count in the winner's favour, so a 0/1 metric it shares with most samples
 * agrees). Guidance and held-out metrics disagree when the winner disagrees on at least one metric,
 * and agree when it disagrees on none. No verdict (null) when no metric can be judged.
 */

import type { ScoredSample } from './report-data.js';

export type { ScoredSample };

export interface MetricCheck {
  readonly name: string;
  /** The winner's value. */
  readonly winner: number;
  /** Median of the metric over the scored samples. */
  readonly median: number;
  /** Scored samples with a strictly higher value than the winner's, of `samples`. */
  readonly higher: number;
  readonly samples: number;
  readonly agrees: boolean;
}

export interface HeldOutCheck {
  readonly verdict: 'agree' | 'disagree';
  /** Size of the reference set. */
  readonly samples: number;
  /** One per judged metric, in the winner's order. */
  readonly metrics: readonly MetricCheck[];
  /** Names of the metrics on which the winner is below the median. */
  readonly disagreeing: readonly string[];
}

/** Fewer scored samples with a metric than this, and that metric is not judged. */
export const MIN_SAMPLES = 4;

/** The candidate fields scoredSamples reads (search/lineage.ts's CandidateRecord has them). */
export interface EvaluatedCandidate {
  readonly origin: { readonly op: string };
  readonly evaluations: readonly { readonly reward: number; readonly metrics?: Readonly<Record<string, number>>; readonly by: string }[];
}

/**
 * The run's reference set from its candidates: every 'final' evaluation (a sample at the end of its
 * trajectory), and every rollout's evaluation counted once, on the x0 it ended in (the same evaluation
 * is also recorded on the rolled-out state and the states it archived). One-step x0 predictions of
 * unfinished trajectories (particles' fitness) are estimates, not samples: left out. Only evaluations
 * with held-out metrics count.
 */
export function scoredSamples(candidates: readonly EvaluatedCandidate[]): ScoredSample[] {
  const samples: ScoredSample[] = [];
  for (const candidate of candidates) {
    for (const e of candidate.evaluations) {
      if (e.metrics === undefined) continue;
      if (e.by === 'final' || (e.by === 'rollout' && candidate.origin.op === 'rollout-final')) samples.push({ reward: e.reward, metrics: e.metrics });
    }
  }
  return samples;
}

function median(sorted: readonly number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The check of the module doc; null when no metric can be judged. */
export function checkHeldOut(winner: { readonly metrics: Readonly<Record<string, number>> }, samples: readonly ScoredSample[]): HeldOutCheck | null {
  const metrics: MetricCheck[] = [];
  for (const [name, value] of Object.entries(winner.metrics)) {
    if (!Number.isFinite(value)) continue;
    const values = samples.map((s) => s.metrics[name]).filter((v): v is number => v !== undefined && Number.isFinite(v)).sort((a, b) => a - b);
    if (values.length < MIN_SAMPLES) continue;
    const higher = values.filter((v) => v > value).length;
    metrics.push({ name, winner: value, median: median(values), higher, samples: values.length, agrees: higher <= values.length / 2 });
  }
  if (metrics.length === 0) return null;
  const disagreeing = metrics.filter((m) => !m.agrees).map((m) => m.name);
  return { verdict: disagreeing.length > 0 ? 'disagree' : 'agree', samples: samples.length, metrics, disagreeing };
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 1000 || Math.abs(v) < 1e-3 ? v.toPrecision(4) : v.toFixed(4));

/** One sentence for the user (the CLI's summary, the report). */
export function describeHeldOutCheck(check: HeldOutCheck): string {
  if (check.verdict === 'agree') {
    return `the held-out metrics agree with the guidance reward: on each, the winner is in the top half of the ${check.samples} samples scored`;
  }
  const parts = check.metrics.filter((m) => !m.agrees).map((m) => `${m.name} ${num(m.winner)} is below the median ${num(m.median)} (${m.higher} of ${m.samples} score higher)`);
  return `the guidance reward and the held-out metrics disagree: the winner's ${parts.join('; its ')}; the search may have exploited the guidance reward`;
}
