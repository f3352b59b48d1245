import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { RunPlan } from '../../config/resolve-run-config.js';
import { createSampler } from '../../samplers/index.js';
import type { WorkerSetup } from '../../proto/worker-setup.js';
import { Dispatcher } from '../engine/dispatcher.js';
import { runSearch, type RoundReport, type SearchOutcome } from '../engine/run-search.js';
import type { WorkerPool } from '../../proto/worker-pool.js';
import { createSearch } from '../engine/create-search.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { clusterWorkerPool, joinNewWorkers } from '../transport/cluster-pool.js';
import { publishEvent, runSubject, type RunEvent } from '../../cluster/events.js';
import { CheckpointMirror } from '../checkpoint/checkpoint-mirror.js';
import { closeNats, connectNats } from '../../cluster/nats-connection.js';
import { GrpcWorkerPool } from '../transport/grpc-pool.js';
import { ThreadPool } from '../../worker/thread-pool.js';
import { withTimeout } from '../../async/timeouts-and-turns.js';
import { modelBuild } from '../../worker/model-build.js';
import { writeRunOutputs } from '../../report/write-outputs.js';
import type { PromptReport } from '../../report/report-data.js';
import { CheckpointWriter, type LoadedCheckpoint } from '../checkpoint/checkpoint-store.js';
import { promptReport } from './prompt-report.js';
import { summarizeRounds, writeRunFolder, RECORD_VERSION, type RunFolderPaths, type RunRecord } from './run-record.js';

export interface EmbeddedRunOptions {
  readonly folder: string;
  readonly logger: Logger;
  readonly onRound?: (report: RoundReport) => void;
  /**
   * Told every event the run publishes on NATS (started, round, workers, finished, failed), with the
   * same payload, whether or not the run is on a cluster: the coordinator service forwards them to
   * its watchers.
   */
  readonly onEvent?: (event: RunEvent, payload: Record<string, unknown>) => void;
  /** Workers to use instead of starting threads (tests, benchmarks). */
  readonly pool?: WorkerPool;
  /** The run's id (default: a new UUID); the coordinator service chooses it at submission. */
  readonly runId?: string;
  /** Cancels the run between rounds. */
  readonly signal?: AbortSignal;
  /** Write a checkpoint to the run folder after every round (default true). */
  readonly checkpoint?: boolean;
  /** Resume: the checkpoint to continue from (its journal is replayed, its folder extended). */
  readonly resume?: LoadedCheckpoint;
}

export interface EmbeddedRunResult {
  readonly record: RunRecord;
  readonly outcome: SearchOutcome;
  readonly paths: RunFolderPaths;
  /** What the report shows, and the files written for the user (PNG, GIF, MP4, report.html). */
  readonly report: PromptReport;
  readonly outputs: readonly string[];
  /** Where the run's wall time went, milliseconds (benchmarks; `outcome.timing` splits `searchMs`). */
  readonly timing: EmbeddedRunTiming;
}

export interface EmbeddedRunTiming {
  /** Starting the workers (threads: loading the model; gRPC: connecting). */
  readonly poolMs: number;
  /** runSearch: the rounds, snapshots, checkpoints and the final fetch. */
  readonly searchMs: number;
  /**
   * Inside the checkpoint writer (encoding, journal line and manifest synced), all rounds; mostly while
   * the workers ran the next round (what the search waited for is `outcome.timing.journalMs`).
   */
  readonly checkpointMs: number;
  readonly checkpointBytes: number;
  /** State snapshot bytes the workers wrote, all rounds. */
  readonly snapshotBytes: number;
  /** record.json, config.json, best-sample.json. */
  readonly recordMs: number;
  /** The report data, PNGs (GIF, MP4) and report.html. */
  readonly outputsMs: number;
  /** Deleting the snapshots of the finished run. */
  readonly cleanupMs: number;
  /** Closing the workers this run started. */
  readonly closeMs: number;
  /** Worker threads' time inside session.run, all threads together (null: not known over this transport). */
  readonly modelMs: number | null;
}

/** Thumbnails in the lineage view: small enough to keep one per evaluation in memory. */
const THUMBNAIL_SIDE = 32;
/** Final samples shown in the population grid. */
const POPULATION_SHOWN = 64;

/** Minimum time between two looks at the cluster's membership during a run. */
const MEMBERSHIP_CHECK_MS = 1000;

/** In a cluster run, workers that registered after the start join at the next round. */
function joinBetweenRounds(plan: RunPlan, pool: WorkerPool, nc: NatsConnection | null, logger: Logger, publish: (event: RunEvent, payload: Record<string, unknown>) => void): (() => Promise<void>) | undefined {
  if (nc === null || !(pool instanceof GrpcWorkerPool)) return undefined;
  let last = Date.now();
  return async () => {
    if (Date.now() - last < MEMBERSHIP_CHECK_MS) return;
    last = Date.now();
    let added: string[];
    try {
      // NATS carries membership, not the work: while it is down the run goes on with the workers it has.
      added = await withTimeout(joinNewWorkers(nc, pool, pool.build, (address, error) => logger.warn({ address, error: error.message }, 'worker could not join')), MEMBERSHIP_CHECK_MS, 'looking for new workers in NATS');
    } catch (error) {
      logger.warn({ error: (error as Error).message }, 'cluster membership unavailable; going on with the current workers');
      return;
    }
    if (added.length > 0) {
      logger.info({ added, workers: pool.size }, 'workers joined');
      publish('workers', { added, workers: pool.addresses });
    }
  };
}

/** The run's workers: the cluster's (NATS), named gRPC workers, or local threads. */
async function openPool(plan: RunPlan, runId: string, nc: NatsConnection | null): Promise<WorkerPool> {
  const setup = workerSetupFor(plan);
  if (nc !== null) return clusterWorkerPool(nc, plan.cluster!, setup, runId, await modelBuild(plan.model));
  if (plan.workersAt !== undefined) return GrpcWorkerPool.connect(plan.workersAt, setup, { runId, expectedBuild: await modelBuild(plan.model) });
  return ThreadPool.start(plan.workers, setup);
}

export function workerSetupFor(plan: RunPlan): WorkerSetup {
  return {
    model: plan.model,
    sampler: plan.sampler,
    seed: String(plan.seed),
    batchSize: plan.batchSize,
    ...(plan.callRows !== undefined ? { callRows: plan.callRows } : {}),
    ...(plan.prompt !== undefined ? { prompt: plan.prompt, negativePrompt: plan.negativePrompt, guidanceScale: plan.guidanceScale } : {}),
    ...(plan.rewards !== undefined ? { rewards: plan.rewards } : {}),
    providers: plan.providers,
    ...(plan.cuda !== undefined ? { cuda: plan.cuda } : {}),
  };
}

/**
 * A whole search driven from this process: the coordinator's engine over local worker threads, or over
 * gRPC workers when the plan names them (`workersAt`), then the run folder.
 */
export async function runEmbedded(plan: RunPlan, options: EmbeddedRunOptions): Promise<EmbeddedRunResult> {
  const { logger } = options;
  const runId = options.resume?.manifest.runId ?? options.runId ?? randomUUID();
  const startedAt = new Date();
  const sampler = createSampler(plan.sampler);
  const machine = createSearch(plan, sampler);
  const nc = plan.cluster === undefined ? null : await connectNats(plan.cluster, `evosearch run ${runId}`);
  // Cluster runs also keep their checkpoint in NATS, so any machine of the cluster can resume them.
  const mirror = nc === null ? null : new CheckpointMirror(nc, runId);
  const checkpoints = options.checkpoint === false ? null : new CheckpointWriter(options.folder, runId, plan, options.resume?.manifest, mirror === null ? undefined : (round, line, manifest) => mirror.put(round, line, manifest));
  // A resumed run first gives the store the rounds it lacks (the run may have been resumed from its
  // folder after a NATS outage), so the store never names a round it has not got.
  if (mirror !== null && checkpoints !== null && options.resume !== undefined) await mirror.resumeFrom(options.folder, options.resume.manifest);
  const leaveNats = async () => {
    if (nc === null) return;
    const failure = await mirror?.flush();
    if (failure) logger.warn({ error: failure.message }, 'checkpoint not mirrored to NATS (the run folder has it)');
    await closeNats(nc);
  };
  const publish = (event: RunEvent, payload: Record<string, unknown>) => {
    if (nc !== null) publishEvent(nc, runSubject(runId, event), { runId, ...payload });
    options.onEvent?.(event, payload);
  };
  let pool: WorkerPool;
  const poolStarted = performance.now();
  try {
    // Workers know a run by its session: a resumed run starts a new one, so states a worker still holds
    // from the interrupted attempt never mix with the rebuilt ones.
    const session = options.resume === undefined ? runId : `${runId}.resume-${randomUUID().slice(0, 8)}`;
    pool = options.pool ?? (await openPool(plan, session, nc));
  } catch (error) {
    publish('failed', { error: (error as Error).message });
    await leaveNats();
    throw error;
  }
  // A provider listed first that did not open (`--providers cuda,cpu` without CUDA): one line, not a page.
  for (const warning of pool.warnings ?? []) logger.warn(warning);
  const poolMs = performance.now() - poolStarted;
  const workers = Array.from({ length: pool.size }, (_, i) => pool.describe(i));
  logger.info({ runId, method: plan.method, model: plan.model, budgetNfe: plan.budgetNfe, planned: plan.planned[plan.method], workers }, 'run started');
  publish('started', { method: plan.method, model: plan.model, prompt: plan.prompt, budgetNfe: plan.budgetNfe, plannedNfe: plan.planned[plan.method].nfe, workers });
  // Workers snapshot their states next to the checkpoint (an absolute path: gRPC workers resolve it on
  // their own machines). A resume loads the snapshot of the last complete round, if the manifest has one.
  const snapshots = plan.snapshots && checkpoints !== null ? resolve(options.folder, 'snapshots') : undefined;
  const resumedSnapshot = options.resume?.manifest.snapshot;
  const restore = resumedSnapshot && resumedSnapshot.round === options.resume!.manifest.rounds - 1 ? resumedSnapshot.files : undefined;
  let outcome: SearchOutcome;
  let searchMs = 0;
  let closeMs = 0;
  let checkpointMs = 0;
  let checkpointBytes = 0;
  let snapshotBytes = 0;
  let modelMs: number | null = null;
  try {
    const dispatcher = new Dispatcher(pool, {
      beforeRound: joinBetweenRounds(plan, pool, nc, logger, publish),
      onSnapshotProblem: (detail) => logger.warn({ detail }, 'state snapshot not usable; a resume rebuilds these states from their recipes'),
    });
    const searchStarted = performance.now();
    outcome = await runSearch(machine, dispatcher, {
      thumbnails: THUMBNAIL_SIDE,
      population: POPULATION_SHOWN,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.resume ? { replay: options.resume.journal } : {}),
      ...(snapshots !== undefined ? { snapshots } : {}),
      ...(restore !== undefined ? { restore } : {}),
      // The checkpoint is written while the workers run the next round; runSearch waits for it before
      // that round's snapshot, so a kill finds the previous round's checkpoint at worst.
      onJournal: async (entry, snapshot) => {
        const roundSnapshotBytes = snapshot?.files.reduce((sum, f) => sum + f.bytes, 0);
        snapshotBytes += roundSnapshotBytes ?? 0;
        if (checkpoints === null) return;
        const best = entry.report.progress.best;
        const written = await checkpoints.append(entry, entry.report.counters, best === null ? null : { candidate: best.candidate, reward: best.reward }, snapshot?.files ?? null);
        checkpointMs += written.ms;
        checkpointBytes += written.bytes;
        logger.debug({ round: entry.report.round, bytes: written.bytes, ms: Math.round(written.ms * 10) / 10, ...(snapshot ? { snapshotBytes: roundSnapshotBytes, snapshotMs: Math.round(snapshot.ms * 10) / 10 } : {}) }, 'checkpoint written');
      },
      onRound: (report) => {
        logger.debug({ round: report.round, label: report.label, best: report.progress.best?.reward, nfe: report.counters.nfe, ms: Math.round(report.roundMs) }, 'round finished');
        publish('round', { round: report.round, label: report.label, best: report.progress.best?.reward ?? null, nfe: report.counters.nfe, plannedNfe: plan.planned[plan.method].nfe, roundMs: Math.round(report.roundMs) });
        options.onRound?.(report);
      },
    });
    searchMs = performance.now() - searchStarted;
    if (pool instanceof ThreadPool) modelMs = pool.modelMs();
  } catch (error) {
    publish('failed', { error: (error as Error).message });
    await leaveNats();
    throw error;
  } finally {
    const closeStarted = performance.now();
    if (options.pool === undefined) await pool.close();
    closeMs = performance.now() - closeStarted;
  }
  if (options.resume) logger.info({ restoredStates: outcome.placement.restoredStates, rebuiltStates: outcome.placement.rebuiltStates, rebuildNfe: outcome.placement.rebuildCounters.nfe }, 'resumed: states loaded from snapshots, and rebuilt');
  const finishedAt = new Date();
  // The sample's own record holds the evaluation that made it the best (a candidate may be evaluated again later).
  const bestRecord = outcome.best === null ? undefined : outcome.candidates[outcome.best.sampleId];
  const record: RunRecord = {
    version: RECORD_VERSION,
    runId,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    wallMs: finishedAt.getTime() - startedAt.getTime(),
    plan,
    // The pool grew by the workers that joined between rounds (it never shrinks: lost ones stay listed).
    workers: Array.from({ length: pool.size }, (_, i) => pool.describe(i)),
    workersJoined: pool.size - workers.length,
    spent: outcome.counters,
    placement: outcome.placement,
    best: outcome.best === null ? null : { candidate: outcome.best.candidate, reward: outcome.best.reward, ...(bestRecord?.metrics ? { metrics: bestRecord.metrics } : {}) },
    rounds: summarizeRounds(outcome),
    candidates: outcome.candidates,
  };
  const recordStarted = performance.now();
  const paths = await writeRunFolder(options.folder, record, outcome);
  const outputsStarted = performance.now();
  const report = promptReport(record, outcome);
  const outputs = writeRunOutputs(options.folder, report, { title: `EvoSearch: ${plan.prompt ?? plan.model}` }).files;
  const cleanupStarted = performance.now();
  // A finished run is never resumed: its snapshots go (those of workers on other machines stay there).
  if (snapshots !== undefined) await rm(snapshots, { recursive: true, force: true });
  const timing: EmbeddedRunTiming = {
    poolMs,
    searchMs,
    checkpointMs,
    checkpointBytes,
    snapshotBytes,
    recordMs: outputsStarted - recordStarted,
    outputsMs: cleanupStarted - outputsStarted,
    cleanupMs: performance.now() - cleanupStarted,
    closeMs,
    modelMs,
  };
  logger.info({ runId, best: record.best, spent: record.spent, wallMs: record.wallMs, record: paths.record, outputs }, 'run finished');
  publish('finished', { best: record.best, spent: record.spent, wallMs: record.wallMs });
  await leaveNats();
  return { record, outcome, paths, report, outputs, timing };
}
