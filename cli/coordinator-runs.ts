/**
 * A run served by a coordinator (`evosearch coordinator`), seen from the command line: find the cluster's
 * coordinators, follow a run's events with a progress display, fetch its files, and, when the run is cut
 * off, tell the user the one command that continues it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import { COORDINATORS_BUCKET, describeSkippedEntry, liveWorkers, type SkippedEntry } from '../cluster/worker-registry.js';
import type { PlanSummary } from '../proto/coordinator-messages.js';
import type { RunRecord } from '../coordinator/run/run-record.js';
import { CoordinatorClient, CoordinatorError } from '../coordinator/service/coordinator-client.js';
import { ProgressDisplay } from './progress.js';
import { followUpCommand, type FollowUp } from './follow-up-flags.js';

/**
 * The live coordinators registered in the cluster at `url` (none: this process coordinates). An entry
 * that is not a coordinator's (not a Member, too large) is passed over with a warning naming its key;
 * one whose writer stopped writing goes stale by the NATS server's clock, whatever time it claims.
 */
export async function findCoordinators(url: string): Promise<string[]> {
  const nc = await connectNats(url, 'evosearch client');
  try {
    const onSkip = (entry: SkippedEntry) => process.stderr.write(`evosearch: warning: passed over a coordinator entry: ${describeSkippedEntry(entry)}\n`);
    return (await liveWorkers(nc, { bucket: COORDINATORS_BUCKET, onSkip })).map((c) => c.address);
  } finally {
    await closeNats(nc);
  }
}

/** The command that continues run `runId` of cluster `cluster` into `folder`, from any machine of it. */
export function resumeCommand(runId: string, cluster: string, folder: string, followUp: FollowUp): string {
  return followUpCommand(`resume ${runId} --cluster ${cluster} --out ${folder}`, followUp);
}

/**
 * Follows run `runId` on the coordinator until it ends, then writes its files into `folder` and prints
 * its summary. A run that does not finish (its coordinator stopped or died, it failed, it was
 * cancelled) is a CoordinatorError that says what happened and, where the run can go on, how.
 * `plan` is what the coordinator said of the run (Submit's or Resume's reply); `showProgress` asks for
 * a progress bar (shown on a terminal only).
 */
export async function followRun(client: CoordinatorClient, runId: string, plan: PlanSummary, showProgress: boolean, cluster: string, folder: string, followUp: FollowUp): Promise<RunRecord> {
  const progress = new ProgressDisplay(showProgress && process.stderr.isTTY === true, plan.plannedNfe);
  const goOn = resumeCommand(runId, cluster, folder, followUp);
  try {
    let last;
    try {
      last = await client.watch(runId, (e) => {
        if (e.event === 'round') progress.showRound(e.payload.nfe, e.payload.round, e.payload.best ?? null);
      });
    } catch (error) {
      // The coordinator went away under us (killed, its machine lost): the run's rounds so far are
      // checkpointed in its folder and in NATS, and a restarted coordinator knows the run.
      const detail = error instanceof CoordinatorError ? error.message : String(error);
      throw new CoordinatorError(client.address, undefined, `lost the coordinator while it ran run ${runId} (${detail}); its complete rounds are checkpointed: continue it with \`${goOn}\``, { cause: error });
    }
    progress.stop();
    if (last.event !== 'finished') {
      const why = 'error' in last.payload ? last.payload.error : 'its event stream ended before the run did';
      const resumable = last.event === 'interrupted';
      throw new CoordinatorError(client.address, undefined, `run ${runId} ${last.event}: ${why}${resumable ? `; its last complete round is checkpointed: continue it with \`${goOn}\`` : ''}`);
    }
    const files = await client.download(runId, folder);
    const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as RunRecord;
    const best = record.best === null ? 'none' : `${record.best.reward.toFixed(6)} (candidate ${record.best.candidate})`;
    process.stdout.write(
      `${plan.method} on ${plan.model}: best reward ${best}\n` +
        `spent ${record.spent.nfe} NFEs on ${describeWorkers(record)} in ${(record.wallMs / 1000).toFixed(2)} s\n` +
        `record: ${join(folder, 'record.json')}\n` +
        `report: ${files.includes('report.html') ? join(folder, 'report.html') : 'none'}\n`,
    );
    return record;
  } finally {
    progress.stop();
  }
}

/** "3 workers (1 joined mid-run, 1 lost)": the workers that took part, as the record counts them. */
export function describeWorkers(record: Pick<RunRecord, 'workers' | 'workersJoined' | 'placement'>): string {
  const joined = record.workersJoined ?? 0;
  const lost = record.placement.lostWorkers;
  const notes = [joined > 0 ? `${joined} joined mid-run` : '', lost > 0 ? `${lost} lost` : ''].filter((n) => n !== '');
  return `${record.workers.length} worker${record.workers.length === 1 ? '' : 's'}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
}
