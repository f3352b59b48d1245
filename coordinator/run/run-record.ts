import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ComputeCounters } from '../../proto/commands.js';
import type { RunPlan } from '../../config/resolve-run-config.js';
import type { SearchOutcome } from '../engine/run-search.js';
import { writeFileDurable } from '../../files/durable-write.js';

export const RECORD_VERSION = 1;

/** Per-round summary kept in the record (the full candidate list is there too). */
export interface RoundSummary {
  readonly round: number;
  readonly label: string;
  readonly generation: number;
  readonly bestReward: number | null;
  readonly populationMean: number | null;
  readonly populationMax: number | null;
  readonly scored: number;
  readonly counters: ComputeCounters;
  readonly ms: number;
  readonly bookkeepingMs: number;
}

export interface RunRecord {
  readonly version: number;
  readonly runId: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly wallMs: number;
  readonly plan: RunPlan;
  /** Every worker that was in the run, in the order they came: those it started with, then those that joined. */
  readonly workers: readonly string[];
  /** How many of `workers` joined mid-run (cluster runs); `placement.lostWorkers` says how many were lost. */
  readonly workersJoined?: number;
  readonly spent: ComputeCounters;
  /** States moved between workers for balance, and the bytes that moved. */
  readonly placement: SearchOutcome['placement'];
  readonly best: { readonly candidate: number; readonly reward: number; readonly metrics?: Readonly<Record<string, number>> } | null;
  readonly rounds: readonly RoundSummary[];
  readonly candidates: SearchOutcome['candidates'];
}

/** What a finished run's record is made of. */
export interface FinishedRun {
  readonly runId: string;
  readonly plan: RunPlan;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  /** Every worker that was in the run (RunRecord.workers), and how many of them joined mid-run. */
  readonly workers: readonly string[];
  readonly workersJoined: number;
  readonly outcome: SearchOutcome;
}

export function runRecord({ runId, plan, startedAt, finishedAt, workers, workersJoined, outcome }: FinishedRun): RunRecord {
  // The sample's own record holds the evaluation that made it the best (a candidate may be evaluated again later).
  const bestRecord = outcome.best === null ? undefined : outcome.candidates[outcome.best.sampleId];
  return {
    version: RECORD_VERSION,
    runId,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    wallMs: finishedAt.getTime() - startedAt.getTime(),
    plan,
    workers,
    workersJoined,
    spent: outcome.counters,
    placement: outcome.placement,
    best: outcome.best === null ? null : { candidate: outcome.best.candidate, reward: outcome.best.reward, ...(bestRecord?.metrics ? { metrics: bestRecord.metrics } : {}) },
    rounds: summarizeRounds(outcome),
    candidates: outcome.candidates,
  };
}

export function summarizeRounds(outcome: SearchOutcome): RoundSummary[] {
  return outcome.rounds.map((r) => {
    const rewards = r.progress.lastRoundRewards;
    const scored = rewards.length;
    return {
      round: r.round,
      label: r.label,
      generation: r.progress.generation,
      bestReward: r.progress.best?.reward ?? null,
      populationMean: scored === 0 ? null : rewards.reduce((a, b) => a + b, 0) / scored,
      populationMax: scored === 0 ? null : Math.max(...rewards),
      scored,
      counters: r.counters,
      ms: r.roundMs,
      bookkeepingMs: r.bookkeepingMs,
    };
  });
}

/** Writes a file so that a reader, or a resume after a crash, never sees half of it (files/durable-write.ts). */
async function writeAtomically(path: string, contents: string): Promise<void> {
  await writeFileDurable(path, contents);
}

export interface RunFolderPaths {
  readonly folder: string;
  readonly record: string;
  readonly config: string;
  readonly bestSample: string;
}

/** The run folder: config.json (the resolved plan), record.json (every candidate), best-sample.json. */
export async function writeRunFolder(folder: string, record: RunRecord, outcome: SearchOutcome): Promise<RunFolderPaths> {
  await mkdir(folder, { recursive: true });
  const paths = { folder, record: join(folder, 'record.json'), config: join(folder, 'config.json'), bestSample: join(folder, 'best-sample.json') };
  await writeAtomically(paths.config, `${JSON.stringify(record.plan, null, 2)}\n`);
  if (outcome.bestSample !== null) {
    const sample = outcome.bestSample;
    await writeAtomically(paths.bestSample, `${JSON.stringify({ candidate: record.best?.candidate, reward: record.best?.reward, shape: sample.shape, data: Array.from(sample.data) })}\n`);
  }
  await writeAtomically(paths.record, `${JSON.stringify(record)}\n`);
  return paths;
}
