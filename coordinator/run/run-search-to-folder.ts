import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { RunPlan } from '../../config/resolve-run-config.js';
import { createSampler } from '../../samplers/index.js';
import type { WorkerPool } from '../../proto/worker-pool.js';
import type { RunEventListener } from '../../cluster/events.js';
import { ThreadPool } from '../../worker/thread-pool.js';
import { writeRunOutputs } from '../../report/write-outputs.js';
import type { PromptReport } from '../../report/report-data.js';
import { Dispatcher } from '../engine/dispatcher.js';
import { createSearch } from '../engine/create-search.js';
import { RunCancelledError, runSearch, type JournalEntry, type RoundReport, type SearchOutcome, type TakenSnapshot } from '../engine/run-search.js';
import { CheckpointWriter, type LoadedCheckpoint } from '../checkpoint/checkpoint-store.js';
import { ClusterSession } from './cluster-session.js';
import { openWorkerPool } from './open-worker-pool.js';
import type { TransportSecurity } from '../../proto/transport-security.js';
import { promptReport } from './prompt-report.js';
import { runRecord, writeRunFolder, type RunFolderPaths, type RunRecord } from './run-record.js';
import type { RunMeter } from '../../metrics/run-meter.js';
import { RunMetering } from './run-metering.js';
import { RoundDetails } from './round-detail.js';
import { RunEventLog } from './run-event-log.js';
import { WorkerActivityPool } from './worker-activity.js';

export interface SearchToFolderOptions {
  readonly folder: string;
  readonly logger: Logger;
  readonly onRound?: (report: RoundReport) => void;
  /**
   * Told every event the run publishes on NATS (started, round, workers, finished, failed), with the
   * same payload, whether or not the run is on a cluster: the coordinator service forwards them to
   * its watchers.
   */
  readonly onEvent?: RunEventListener;
  /** Workers to use instead of starting threads (tests, benchmarks). */
  readonly pool?: WorkerPool;
  /** How gRPC workers are reached (default plaintext, loopback only): the process's certificates, never part of the plan. */
  readonly transport?: TransportSecurity;
  /** The run's id (default: a new UUID); the coordinator service chooses it at submission. */
  readonly runId?: string;
  /** Cancels the run between rounds. */
  readonly signal?: AbortSignal;
  /** Write a checkpoint to the run folder after every round (default true). */
  readonly checkpoint?: boolean;
  /** Resume: the checkpoint to continue from (its journal is replayed, its folder extended). */
  readonly resume?: LoadedCheckpoint;
  /** Told what the run spends and moves as it goes (the coordinator service's metrics). */
  readonly meter?: RunMeter;
  /**
   * Keep the run's events in its folder's events.jsonl (run-event-log.ts), for `evosearch view` in
   * another process: embedded runs. A coordinator keeps its own (default false).
   */
  readonly eventLog?: boolean;
}

export interface SearchToFolderResult {
  readonly record: RunRecord;
  readonly outcome: SearchOutcome;
  readonly paths: RunFolderPaths;
  /** What the report shows, and the files written for the user (PNG, GIF, MP4, report.html). */
  readonly report: PromptReport;
  readonly outputs: readonly string[];
  /** Where the run's wall time went, milliseconds (benchmarks; `outcome.timing` splits `searchMs`). */
  readonly timing: SearchToFolderTiming;
}

export interface SearchToFolderTiming {
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

/**
 * A whole search driven from this process into its run folder, on whatever workers the plan names
 * (local threads, `--workers-at` gRPC workers, a `--cluster`'s; open-worker-pool.ts) or `options.pool`:
 * a checkpoint after every round, then record.json, the images and report.html. A cluster run also
 * keeps its part in the cluster (cluster-session.ts): NATS, the checkpoint mirror, events, workers
 * joining between rounds.
 */
export async function runSearchToFolder(plan: RunPlan, options: SearchToFolderOptions): Promise<SearchToFolderResult> {
  const { logger } = options;
  const runId = options.resume?.manifest.runId ?? options.runId ?? randomUUID();
  const startedAt = new Date();
  const sampler = createSampler(plan.sampler);
  const machine = createSearch(plan, sampler);
  const cluster = plan.cluster === undefined ? null : await ClusterSession.open(plan.cluster, runId, logger);
  const log = options.eventLog === true ? new RunEventLog(options.folder, runId, (warning) => logger.warn(warning)) : null;
  const publish: RunEventListener = (event, payload) => {
    cluster?.publish(event, payload);
    options.onEvent?.(event, payload);
    // A stop (a signal) is written as how it ends below, not as a failure.
    if (event !== 'failed') log?.append(event, payload);
  };
  if (options.resume !== undefined) log?.append('resumed', { afterRound: options.resume.manifest.rounds, nfe: options.resume.manifest.spent.nfe });
  /** A run that stops on an error says so on NATS and to the listener, and leaves the cluster. */
  const failRun = async (error: unknown) => {
    publish('failed', { error: (error as Error).message });
    // In its own log, a stopped run is resumable: interrupted, with the command that continues it.
    if (error instanceof RunCancelledError) log?.append('interrupted', { error: (error as Error).message, folder: options.folder, resume: `evosearch resume ${options.folder}` });
    else log?.append('failed', { error: (error as Error).message });
    await log?.flushed();
    await cluster?.leave();
  };
  let checkpoints: CheckpointWriter | null;
  let snapshots: string | undefined;
  let pool: WorkerPool;
  let poolMs: number;
  // Anything that fails before the search (the checkpoint folder, the mirror, the workers) fails the
  // run with its event and closes the cluster connection.
  try {
    checkpoints = options.checkpoint === false ? null : new CheckpointWriter(options.folder, runId, plan, options.resume?.manifest, cluster === null ? undefined : (round, line, manifest) => cluster.mirrorRound(round, line, manifest));
    if (cluster !== null && checkpoints !== null && options.resume !== undefined) await cluster.mirrorResumedRounds(options.folder, options.resume.manifest);
    // Workers know a run by its session: a resumed run starts a new one, so states a worker still holds
    // from the interrupted attempt never mix with the rebuilt ones.
    const session = options.resume === undefined ? runId : `${runId}.resume-${randomUUID().slice(0, 8)}`;
    // Local threads snapshot their states next to the checkpoint; gRPC workers keep theirs in their own
    // state folders, under the run's id (not the session's), so a resume on the same workers finds them.
    snapshots = plan.snapshots && checkpoints !== null ? resolve(options.folder, 'snapshots') : undefined;
    const poolStarted = performance.now();
    pool = options.pool ?? (await openWorkerPool(plan, { session, runId, ...(snapshots !== undefined ? { snapshotFolder: snapshots } : {}) }, cluster?.nc ?? null, { warn: (warning) => logger.warn(warning), ...(options.transport !== undefined ? { transport: options.transport } : {}), ...(options.meter !== undefined ? { wire: options.meter.workerWire } : {}) }));
    poolMs = performance.now() - poolStarted;
  } catch (error) {
    await failRun(error);
    throw error;
  }
  // A provider listed first that did not open (`--providers cuda,cpu` without CUDA): one line, not a page.
  for (const warning of pool.warnings ?? []) logger.warn(warning);
  const workers = Array.from({ length: pool.size }, (_, i) => pool.describe(i));
  logger.info({ runId, method: plan.method, model: plan.model, budgetNfe: plan.budgetNfe, planned: plan.planned[plan.method], workers }, 'run started');
  publish('started', { method: plan.method, model: plan.model, ...(plan.prompt !== undefined ? { prompt: plan.prompt } : {}), budgetNfe: plan.budgetNfe, plannedNfe: plan.planned[plan.method].nfe, workers });
  // A resume loads the snapshot of the last complete round, if the manifest has one.
  const resumedSnapshot = options.resume?.manifest.snapshot;
  const restore = resumedSnapshot && resumedSnapshot.round === options.resume!.manifest.rounds - 1 ? resumedSnapshot.files : undefined;
  const journal = checkpointEveryRound(checkpoints, logger, options.meter);
  let outcome: SearchOutcome;
  let searchMs = 0;
  let closeMs = 0;
  let modelMs: number | null = null;
  // The rounds a resume replays were counted by the attempt that ran them.
  const replayedNfe = (options.resume?.journal ?? []).reduce((sum, entry) => sum + entry.results.reduce((s, r) => s + r.counters.nfe, 0), 0);
  const metering = options.meter === undefined ? null : new RunMetering(options.meter, pool.size, replayedNfe);
  // Timed per worker for the round events' detail (round-detail.ts); the pool itself is unchanged.
  const activity = new WorkerActivityPool(pool);
  const details = new RoundDetails();
  let dispatcher: Dispatcher | null = null;
  let roundNfe = replayedNfe;
  try {
    dispatcher = new Dispatcher(activity, {
      beforeRound: cluster?.joinBetweenRounds(pool, publish),
      onSnapshotProblem: (detail) => logger.warn({ detail }, 'state snapshot not usable; a resume rebuilds these states from their recipes'),
    });
    const searchStarted = performance.now();
    outcome = await runSearch(machine, dispatcher, {
      thumbnails: THUMBNAIL_SIDE,
      population: POPULATION_SHOWN,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.resume ? { replay: options.resume.journal } : {}),
      ...(snapshots !== undefined ? { snapshots: true } : {}),
      ...(restore !== undefined ? { restore } : {}),
      // The checkpoint is written while the workers run the next round; runSearch waits for it before
      // that round's snapshot, so a kill finds the previous round's checkpoint at worst.
      onJournal: (entry, snapshot) => {
        details.noteResults(entry.report.round, entry.results);
        return journal.onJournal(entry, snapshot);
      },
      onRound: (report) => {
        roundNfe = report.counters.nfe;
        metering?.report({ nfe: roundNfe, placement: dispatcher!.stats, workers: pool.size });
        logger.debug({ round: report.round, label: report.label, best: report.progress.best?.reward, nfe: report.counters.nfe, ms: Math.round(report.roundMs) }, 'round finished');
        const detail = details.detail(report, machine.candidates(), activity, dispatcher!);
        publish('round', { round: report.round, label: report.label, ...(report.progress.best ? { best: report.progress.best.reward } : {}), nfe: report.counters.nfe, plannedNfe: plan.planned[plan.method].nfe, roundMs: Math.round(report.roundMs), detail });
        options.onRound?.(report);
      },
    });
    searchMs = performance.now() - searchStarted;
    if (pool instanceof ThreadPool) modelMs = pool.modelMs();
  } catch (error) {
    // A failed round's lost workers and rebuilt states count all the same.
    if (dispatcher !== null) metering?.report({ nfe: roundNfe, placement: dispatcher.stats, workers: pool.size });
    await failRun(error);
    throw error;
  } finally {
    const closeStarted = performance.now();
    if (options.pool === undefined) await pool.close();
    closeMs = performance.now() - closeStarted;
  }
  if (dispatcher !== null) metering?.report({ nfe: roundNfe, placement: dispatcher.stats, workers: pool.size });
  if (options.resume) logger.info({ restoredStates: outcome.placement.restoredStates, rebuiltStates: outcome.placement.rebuiltStates, rebuildNfe: outcome.placement.rebuildCounters.nfe }, 'resumed: states loaded from snapshots, and rebuilt');
  const record = runRecord({
    runId,
    plan,
    startedAt,
    finishedAt: new Date(),
    // The pool grew by the workers that joined between rounds (it never shrinks: lost ones stay listed).
    workers: Array.from({ length: pool.size }, (_, i) => pool.describe(i)),
    workersJoined: pool.size - workers.length,
    outcome,
  });
  const recordStarted = performance.now();
  const paths = await writeRunFolder(options.folder, record, outcome);
  const outputsStarted = performance.now();
  const report = promptReport(record, outcome);
  const outputs = writeRunOutputs(options.folder, report, { title: `EvoSearch: ${plan.prompt ?? plan.model}` }).files;
  const cleanupStarted = performance.now();
  // A finished run is never resumed: its snapshots go (those gRPC workers keep in their state folders stay there).
  if (snapshots !== undefined) await rm(snapshots, { recursive: true, force: true });
  const timing: SearchToFolderTiming = {
    poolMs,
    searchMs,
    checkpointMs: journal.spent.checkpointMs,
    checkpointBytes: journal.spent.checkpointBytes,
    snapshotBytes: journal.spent.snapshotBytes,
    recordMs: outputsStarted - recordStarted,
    outputsMs: cleanupStarted - outputsStarted,
    cleanupMs: performance.now() - cleanupStarted,
    closeMs,
    modelMs,
  };
  logger.info({ runId, best: record.best, spent: record.spent, wallMs: record.wallMs, record: paths.record, outputs }, 'run finished');
  publish('finished', { ...(record.best !== null ? { best: { metrics: {}, ...record.best } } : {}), spent: record.spent, wallMs: record.wallMs, workers: record.workers });
  await log?.flushed();
  await cluster?.leave();
  return { record, outcome, paths, report, outputs, timing };
}

/**
 * runSearch's onJournal for a run folder: each round appended to the checkpoint (a run without one
 * only counts its snapshots), and what that cost, all rounds together.
 */
function checkpointEveryRound(checkpoints: CheckpointWriter | null, logger: Logger, meter: RunMeter | undefined) {
  const spent = { checkpointMs: 0, checkpointBytes: 0, snapshotBytes: 0 };
  const onJournal = async (entry: JournalEntry, snapshot: TakenSnapshot | null) => {
    const roundSnapshotBytes = snapshot?.files.reduce((sum, f) => sum + f.bytes, 0);
    spent.snapshotBytes += roundSnapshotBytes ?? 0;
    if (checkpoints === null) return;
    const best = entry.report.progress.best;
    const written = await checkpoints.append(entry, entry.report.counters, best === null ? null : { candidate: best.candidate, reward: best.reward }, snapshot?.files ?? null);
    spent.checkpointMs += written.ms;
    meter?.checkpointWritten(written.ms / 1000);
    spent.checkpointBytes += written.bytes;
    logger.debug({ round: entry.report.round, bytes: written.bytes, ms: Math.round(written.ms * 10) / 10, ...(snapshot ? { snapshotBytes: roundSnapshotBytes, snapshotMs: Math.round(snapshot.ms * 10) / 10 } : {}) }, 'checkpoint written');
  };
  return { spent, onJournal };
}
