import { FailureError } from '../errors/evosearch-error.js';
import { addTransportOptions, transportFrom } from './transport-options.js';
import type { TransportSecurity } from '../proto/transport-security.js';
import { RunFolderLock, runFolderState } from '../coordinator/run/run-folder-lock.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { CheckpointError, readCheckpoint, MANIFEST_GENERATIONS, type CheckpointManifest } from '../coordinator/checkpoint/checkpoint-store.js';
import { runSearchToFolder } from '../coordinator/run/run-search-to-folder.js';
import { CHECKPOINTS_BUCKET, fetchCheckpoint } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import { checkPlanPlacement, ConfigError, parseRunConfig, type RunPlan } from '../config/resolve-run-config.js';
import type { RunConfigInput } from '../config/run-config-schema.js';
import { createRunLogger } from './logger.js';
import * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { CoordinatorClient, CoordinatorError } from '../coordinator/service/coordinator-client.js';
import type { PlanSummary } from '../proto/coordinator-messages.js';
import { findCoordinators, followRun } from './coordinator-runs.js';
import { ProgressDisplay } from './progress.js';
import { addClusterKeyOption, addNatsAccessOptions } from './cluster-access-options.js';
import { followUpOf, type FollowUp } from './follow-up-flags.js';

/**
 * `evosearch resume <run folder>`: continues a run from its last complete checkpoint, here or on a
 * cluster, and finishes it in the same folder. The answer is the uninterrupted run's: the journal
 * replays the search's decisions and the live states are rebuilt from their recipes.
 */
export function buildResumeCommand(): Command {
  const command = new Command('resume')
    .description("Continue a run from its last complete checkpoint (the run folder's checkpoint.json + journal.jsonl) and finish it in the same folder.")
    .argument('<run>', 'the run folder, or a run id (looked up under --runs-dir)')
    .option('--runs-dir <dir>', 'where to look a run id up', 'runs')
    .option('--workers <n>', 'local worker threads (default: what the run had)', wholeNumber('--workers'))
    .option('--workers-at <addresses>', 'run on these gRPC workers instead (host:port,...)')
    .option('--cluster <nats-url>', "run on this cluster's workers instead; a run id a coordinator of the cluster served is continued by that coordinator, one it does not know from the checkpoint in NATS")
    .option('--out <folder>', 'for a run id resumed from the cluster: where its files go (default: <runs-dir>/<id>)')
    .option('--no-progress', 'no progress bar');
  return addTransportOptions(addClusterKeyOption(addNatsAccessOptions(command, 'cluster')))
    .action(async (runArg: string, options: ResumeOptions) => {
      // gRPC (a coordinator, --workers-at, --cluster) is secured by the TLS flags or --insecure.
      const transport = (): TransportSecurity => transportFrom(command, ['coordinator', 'client', 'admin']);
      // Where it runs is checked as `run` checks it (the same schema) before anything is read or locked.
      placementFlags(options);
      // A run a coordinator of the cluster served goes on there (it has the folder, the lock, the watchers).
      if (options.cluster !== undefined && !existsSync(runArg) && (await resumeOnCoordinator(runArg, options.cluster, resolve(options.out ?? join(options.runsDir, runArg)), options.progress, transport(), followUpOf(command)))) return;
      const folder = await locate(runArg, options.runsDir, options.cluster, options.out);
      // A finished run is not run again: that would re-spend its NFEs and rewrite its record.
      if (runFolderState(folder) === 'finished') {
        process.stdout.write(`run folder ${folder} holds a finished run (record.json): nothing to resume, nothing changed\n`);
        return;
      }
      const lock = RunFolderLock.acquire(folder);
      try {
        await resumeIn(folder, options, transport);
      } finally {
        lock.release();
      }
    });
}

interface ResumeOptions {
  readonly runsDir: string;
  readonly out?: string;
  readonly workers?: number;
  readonly workersAt?: string;
  readonly cluster?: string;
  readonly progress: boolean;
}

/** An integer flag value, refused as `run` refuses one (a usage error, exit 2). */
function wholeNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} takes an integer, got '${value}'`);
    return n;
  };
}

/** The placement flags as run config, validated by the run config's schema: ConfigError (exit 2) names the field. */
function placementFlags(options: ResumeOptions): RunConfigInput {
  const layer: Record<string, unknown> = {};
  if (options.workers !== undefined) layer.workers = options.workers;
  if (options.workersAt !== undefined) layer.workersAt = options.workersAt.split(',').map((a) => a.trim()).filter((a) => a !== '');
  if (options.cluster !== undefined) layer.cluster = options.cluster;
  const flags = parseRunConfig(layer, 'command-line flags');
  if (flags.cluster !== undefined && flags.workersAt !== undefined) throw new ConfigError('cluster', 'give either a cluster (--cluster, workers found through NATS) or worker addresses (--workers-at), not both', 'command-line flags');
  return flags;
}

async function resumeIn(folder: string, options: ResumeOptions, transport: () => TransportSecurity): Promise<void> {
  const flags = placementFlags(options);
  const checkpoint = readCheckpoint(folder);
  if (checkpoint.warning !== null) process.stderr.write(`evosearch: warning: ${checkpoint.warning}\n`);
  const stored = checkpoint.manifest.plan;
  // Where it runs may change on resume; what it computes may not.
  const plan: RunPlan = {
    ...stored,
    ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
    workersAt: flags.workersAt ?? (flags.cluster ? undefined : stored.workersAt),
    cluster: flags.cluster ?? (flags.workersAt ? undefined : stored.cluster),
  };
  // The checks `run` makes of a plan: WebGPU's one thread, the thread limit, this machine's limits.
  checkPlanPlacement(plan, 'command-line flags');
  const logger = createRunLogger({ file: join(folder, 'run.log'), fileLevel: 'info', terminalLevel: 'warn' });
  // As in run: shown at once, a bar on a terminal and plain lines elsewhere (--no-progress: neither).
  const progress = new ProgressDisplay(options.progress, plan.planned[plan.method].nfe);
  progress.begin('opening models…');
  try {
    const { record, paths } = await runSearchToFolder(plan, { folder, logger, resume: checkpoint, eventLog: true, onRound: (r) => progress.update(r), ...(plan.cluster !== undefined || plan.workersAt !== undefined ? { transport: transport() } : {}) });
    progress.stop();
    process.stdout.write(
      `resumed ${plan.method} on ${plan.model} after round ${checkpoint.manifest.rounds}: best reward ${record.best?.reward.toFixed(6) ?? 'none'}\n` +
        `spent ${record.spent.nfe} NFEs in all; live states: ${record.placement.restoredStates} loaded from snapshots, ${record.placement.rebuiltStates} rebuilt for ${record.placement.rebuildCounters.nfe} more NFEs\n` +
        `record: ${paths.record}\n`,
    );
  } finally {
    progress.stop();
    logger.flush();
  }
}

/**
 * The run folder to resume: a path, a run id found under runsDir, or (with a cluster) a run id whose
 * checkpoint is in the cluster's object store, fetched into runsDir/<id> (resume on another machine).
 */
async function locate(run: string, runsDir: string, cluster: string | undefined, out: string | undefined): Promise<string> {
  try {
    return findRunFolder(run, runsDir);
  } catch (error) {
    if (cluster === undefined) throw error;
    const nc = await connectNats(cluster, 'evosearch resume');
    try {
      const target = resolve(out ?? join(runsDir, run));
      if (!(await fetchCheckpoint(nc, run, target))) throw new CheckpointError(run, `no run folder here, and no checkpoint of run '${run}' in ${cluster}'s ${CHECKPOINTS_BUCKET}`);
      process.stderr.write(`evosearch: fetched run ${run}'s checkpoint from ${cluster} into ${target}\n`);
      return target;
    } finally {
      await closeNats(nc);
    }
  }
}

/**
 * Asks the cluster's coordinators to continue run `runId`: true once one did and the run finished (its
 * files are in `folder`); false when none knows it (then this process resumes it). A coordinator that
 * knows the run but cannot continue it (finished, running, no usable checkpoint) says why: an error.
 */
async function resumeOnCoordinator(runId: string, cluster: string, folder: string, showProgress: boolean, transport: TransportSecurity, followUp: FollowUp): Promise<boolean> {
  for (const address of await findCoordinators(cluster)) {
    const client = new CoordinatorClient(address, transport);
    try {
      let plan: PlanSummary;
      try {
        ({ plan } = await client.resume(runId));
      } catch (error) {
        if (error instanceof CoordinatorError && (error.status === grpc.status.NOT_FOUND || error.status === grpc.status.UNAVAILABLE)) continue;
        throw error;
      }
      process.stdout.write(`resumed run ${runId} on coordinator ${address}\n`);
      await mkdir(folder, { recursive: true });
      await followRun(client, runId, plan, showProgress, cluster, folder, followUp);
      return true;
    } finally {
      client.close();
    }
  }
  return false;
}

/** A run folder given as a path, or as the run id its checkpoint records (searched under runsDir). */
export function findRunFolder(run: string, runsDir: string): string {
  if (existsSync(run)) return resolve(run);
  const dir = resolve(runsDir);
  const matches = existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        // The run id of any manifest the folder still holds: a damaged checkpoint.json does not hide its run.
        .filter((e) =>
          MANIFEST_GENERATIONS.some((file) => {
            try {
              return (JSON.parse(readFileSync(join(dir, e.name, file), 'utf8')) as { runId?: string }).runId === run;
            } catch {
              return false;
            }
          }),
        )
    : [];
  // A folder or id that names no run is the user's input (exit 2), not a checkpoint that failed.
  if (matches.length !== 1) throw new FailureError('run-folder', `${run}: ` + (matches.length === 0 ? `no run folder or run id '${run}' (run ids are looked up under ${dir}; evosearch runs lists them)` : `run id '${run}' is in ${matches.length} folders under ${dir}: give the folder`));
  return join(dir, matches[0]!.name);
}

type RunState = 'finished' | 'resumable' | 'unreadable';

/** `evosearch runs [dir]`: the run folders under dir, with their state and progress. */
export function buildRunsCommand(): Command {
  return new Command('runs')
    .description('List the runs under a folder (default runs/): finished or resumable, rounds done, NFEs spent, best reward.')
    .argument('[dir]', 'folder holding run folders', 'runs')
    .action((dirArg: string) => {
      const dir = resolve(dirArg);
      if (!existsSync(dir)) {
        process.stdout.write(`no runs under ${dir}\n`);
        return;
      }
      const rows: string[] = ['| run folder | run id | state | rounds | NFEs spent | best reward | method | model |', '|---|---|---|---|---|---|---|---|'];
      for (const entry of readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
        const folder = join(dir, entry.name);
        if (!MANIFEST_GENERATIONS.some((file) => existsSync(join(folder, file))) && !existsSync(join(folder, 'record.json'))) continue;
        let state: RunState = 'resumable';
        let manifest: CheckpointManifest | null = null;
        try {
          manifest = readCheckpoint(folder).manifest;
        } catch {
          state = 'unreadable';
        }
        if (existsSync(join(folder, 'record.json'))) state = 'finished';
        const record = state === 'finished' ? (JSON.parse(readFileSync(join(folder, 'record.json'), 'utf8')) as { spent: { nfe: number }; best: { reward: number } | null; plan: RunPlan; rounds: unknown[] }) : null;
        const plan = record?.plan ?? manifest?.plan;
        rows.push(`| ${entry.name} | ${manifest?.runId ?? '–'} | ${state} | ${record?.rounds.length ?? manifest?.rounds ?? '–'} | ${record?.spent.nfe ?? manifest?.spent.nfe ?? '–'} | ${(record?.best ?? manifest?.best)?.reward.toFixed(4) ?? '–'} | ${plan?.method ?? '–'} | ${plan?.model ?? '–'} |`);
      }
      process.stdout.write(`${rows.join('\n')}\n`);
    });
}
