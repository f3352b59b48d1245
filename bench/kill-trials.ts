/**
 * Faults at the sizes that broke, each compared with the undisturbed run of the same configuration
 * (same best candidate and reward, NFEs spent, every candidate's parents, reward and evaluations).
 * Everything runs as real processes (nats-server, `evosearch worker`, `evosearch coordinator`,
 * `evosearch run` / `resume`), on a fresh NATS server and fresh workers for every run.
 *
 *   npm run build && node dist/bench/kill-trials.js [--trials 3] [--faults embedded-kill,worker-kill,...]
 *     [--budget-nfe 1500000] [--video-dimension 65536] [--video-budget-nfe 20000] [--workers 3]
 *     [--seed 1] [--max-delay-ms 600] [--nats-down-ms 2000] [--timeout-s 900] [--no-snapshots]
 *
 * Faults (`--faults`, comma-separated; default all):
 * - embedded-kill: `evosearch run` on local threads killed -9 after its first checkpoint plus a random
 *   0–max-delay-ms, then `evosearch resume` (three small configurations, `--no-snapshots` applies here).
 * - worker-kill: `evosearch run --cluster` over N worker processes; one worker killed -9 during the
 *   round after the first checkpoint. The run must finish by itself.
 * - coordinator-stop: an `evosearch coordinator` serving `evosearch run --cluster`; the coordinator gets
 *   SIGTERM during the round after the first checkpoint; the `evosearch resume …` command the client
 *   prints is run as printed.
 * - nats-restart: nats-server killed -9 during the round after the first checkpoint, restarted on the
 *   same port and store after --nats-down-ms. The run must finish by itself; then its mirrored
 *   checkpoint is resumed from NATS into an empty runs-dir (`evosearch resume <id> --cluster …
 *   --runs-dir <other>`), which must give the same answer (a second row).
 * - nats-restart-client-kill: once NATS holds the run's first mirrored checkpoint, the same NATS
 *   restart during the next round, then the client killed -9 a moment (0–max-delay-ms) after NATS is
 *   back; its folder is deleted and the run is resumed from NATS on "another machine" (empty runs-dir).
 * - video-worker-kill, video-coordinator-stop: worker-kill and coordinator-stop with latents of
 *   --video-dimension floats (analytic:gmm?dimension=D) at --video-budget-nfe.
 *
 * A trial that fails (non-zero exit, timeout, wrong answer) is counted and listed with its error.
 * `--seed` seeds the random kill points and is the run seed of the cluster configurations.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Objm } from '@nats-io/obj';
import { CHECKPOINTS_BUCKET } from '../coordinator/checkpoint/checkpoint-mirror.js';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import { describeExit, lastLines, ProcessSet, runCli, startCli, startCoordinator, startNats, startWorker, type CliResult, type NatsProcess, type ServerProcess } from './cluster-processes.js';

const FAULTS = ['embedded-kill', 'worker-kill', 'coordinator-stop', 'nats-restart', 'nats-restart-client-kill', 'video-worker-kill', 'video-coordinator-stop'] as const;
type Fault = (typeof FAULTS)[number];

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '3' },
    faults: { type: 'string', default: FAULTS.join(',') },
    'budget-nfe': { type: 'string', default: '1500000' },
    'video-dimension': { type: 'string', default: '65536' },
    'video-budget-nfe': { type: 'string', default: '20000' },
    workers: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    'max-delay-ms': { type: 'string', default: '600' },
    'nats-down-ms': { type: 'string', default: '2000' },
    'timeout-s': { type: 'string', default: '900' },
    'no-snapshots': { type: 'boolean', default: false },
  },
});
const positive = (flag: string, value: string | undefined): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`kill-trials: --${flag} takes a whole number, got '${value}'\n`);
    process.exit(2);
  }
  return n;
};
const trials = positive('trials', values.trials);
const budget = positive('budget-nfe', values['budget-nfe']);
const videoDimension = positive('video-dimension', values['video-dimension']);
const videoBudget = positive('video-budget-nfe', values['video-budget-nfe']);
const workerCount = positive('workers', values.workers);
const seed = positive('seed', values.seed);
const maxDelayMs = positive('max-delay-ms', values['max-delay-ms']);
const natsDownMs = positive('nats-down-ms', values['nats-down-ms']);
const timeoutMs = positive('timeout-s', values['timeout-s']) * 1000;
const faults = values.faults!.split(',').map((f) => f.trim()).filter((f) => f !== '');
const unknown = faults.filter((f) => !(FAULTS as readonly string[]).includes(f));
if (unknown.length > 0 || faults.length === 0) {
  process.stderr.write(`kill-trials: unknown fault(s) ${unknown.join(', ') || '(none given)'}; known: ${FAULTS.join(', ')}\n`);
  process.exit(2);
}
// Without the workers' state snapshots every resume of an embedded run rebuilds its states from recipes.
const snapshotFlag = values['no-snapshots'] ? ['--no-snapshots'] : [];

interface RunRecord {
  best: unknown;
  spent: { nfe: number };
  candidates: { parents: unknown; reward: unknown; evaluations: unknown }[];
  rounds: { ms: number }[];
  placement: { lostWorkers: number; rebuiltStates: number; restoredStates: number; rebuildCounters: { nfe: number } };
}
/** What must not change under a fault: the best, the compute, and every candidate's lineage and reward. */
const decisions = (r: RunRecord) => JSON.stringify({ best: r.best, nfe: r.spent.nfe, candidates: r.candidates.map((c) => [c.parents, c.reward, c.evaluations]) });

async function readRecord(folder: string): Promise<RunRecord> {
  return JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as RunRecord;
}

async function rounds(folder: string): Promise<number> {
  try {
    return (JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as { rounds: number }).rounds;
  } catch {
    return 0;
  }
}

async function runIdOf(folder: string): Promise<string> {
  return (JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8')) as { runId: string }).runId;
}

/** Polls `ready` until it holds or `alive` stops holding; true when it held. */
async function until(ready: () => Promise<boolean> | boolean, alive: () => boolean, everyMs = 5): Promise<boolean> {
  for (;;) {
    if (await ready()) return true;
    if (!alive()) return false;
    await sleep(everyMs);
  }
}

let state = seed;
const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

// ---------------------------------------------------------------------------------------------------
// What each trial and row holds.

interface Trial {
  /** The fault hit a run that was still going (not one that had finished). */
  landed: boolean;
  outcome: 'finished by itself' | 'resumed' | 'failed';
  identical: boolean;
  error?: string;
  notes: string[];
  /** From the final record (the resumed one after a resume). */
  lost?: number;
  rebuilt?: number;
  rebuildNfe?: number;
  restored?: number;
  /** What the user waited for: the disturbed run, plus the resume when there is one. */
  wallMs: number;
  /** Set where the extra time is not wall − undisturbed wall (the resume-elsewhere row: the resume itself). */
  extraMs?: number;
}

interface Reference {
  readonly decisions: string;
  readonly wallMs: number;
  readonly roundMs: readonly number[];
}

interface Row {
  readonly fault: string;
  readonly configuration: string;
  reference: Reference | { error: string };
  readonly trials: Trial[];
  /** The bench's own time per trial: cluster start-up, the faulty run, the resume, the checks. */
  readonly benchMs: number[];
}

const failed = (error: string, wallMs = 0, notes: string[] = [], landed = false): Trial => ({ landed, outcome: 'failed', identical: false, error, notes, wallMs });

/** A finished record checked against the reference. */
function judged(record: RunRecord, reference: Reference, trial: Omit<Trial, 'identical' | 'lost' | 'rebuilt' | 'rebuildNfe' | 'restored'>): Trial {
  const identical = decisions(record) === reference.decisions;
  const result: Trial = {
    ...trial,
    identical,
    lost: record.placement.lostWorkers,
    rebuilt: record.placement.rebuiltStates,
    rebuildNfe: record.placement.rebuildCounters.nfe,
    restored: record.placement.restoredStates,
  };
  if (!identical) {
    result.outcome = 'failed';
    result.error ??= `not the undisturbed answer: ${describeDifference(record, reference)}`;
  }
  return result;
}

function describeDifference(record: RunRecord, reference: Reference): string {
  const ref = JSON.parse(reference.decisions) as { best: unknown; nfe: number; candidates: unknown[] };
  const parts: string[] = [];
  if (JSON.stringify(record.best) !== JSON.stringify(ref.best)) parts.push(`best ${JSON.stringify(record.best)} vs ${JSON.stringify(ref.best)}`);
  if (record.spent.nfe !== ref.nfe) parts.push(`${record.spent.nfe} NFEs vs ${ref.nfe}`);
  if (record.candidates.length !== ref.candidates.length) parts.push(`${record.candidates.length} candidates vs ${ref.candidates.length}`);
  else {
    const first = record.candidates.findIndex((c, i) => JSON.stringify([c.parents, c.reward, c.evaluations]) !== JSON.stringify(ref.candidates[i]));
    if (first >= 0) parts.push(`candidate ${first} differs (parents, reward or evaluations)`);
  }
  return parts.join('; ') || 'the decisions differ';
}

// ---------------------------------------------------------------------------------------------------
// Processes, folders and clusters.

const processes = new ProcessSet();
const dir = await mkdtemp(join(tmpdir(), 'kill-trials-'));
let folderCount = 0;
async function freshFolder(name: string): Promise<string> {
  const folder = join(dir, `${String(folderCount++).padStart(3, '0')}-${name}`);
  await mkdir(folder, { recursive: true });
  return folder;
}

interface Cluster {
  readonly nats: NatsProcess;
  readonly workers: ServerProcess[];
  readonly coordinator: ServerProcess | null;
  /** The coordinator's --runs-dir (served run folders are <runsDir>/<runId>). */
  readonly runsDir: string;
}

/** A fresh cluster (NATS with its own store, N workers, a coordinator if asked) for one run; torn down after. */
async function withCluster<T>(folder: string, model: string, coordinator: boolean, work: (cluster: Cluster) => Promise<T>): Promise<T> {
  const local = processes.subset();
  try {
    const nats = await startNats(local, join(folder, 'nats-store'));
    const workers = await Promise.all(Array.from({ length: workerCount }, () => startWorker(local, model, nats.url)));
    const runsDir = join(folder, 'served');
    const served = coordinator ? await startCoordinator(local, nats.url, runsDir) : null;
    return await work({ nats, workers, coordinator: served, runsDir });
  } finally {
    await local.killAll();
  }
}

const exitOk = (r: CliResult) => r.code === 0 && !r.timedOut;

/** A run of `evosearch run --cluster` on a fresh cluster, in a fresh folder (removed after). */
interface ClusterRun {
  readonly cluster: Cluster;
  readonly run: ReturnType<typeof startCli>;
  /** The client's --out folder. */
  readonly out: string;
  /** The trial's own folder (NATS store, served runs, other runs dirs). */
  readonly folder: string;
}

/**
 * Starts the client on a fresh cluster (with a coordinator if asked) and, without a coordinator, waits
 * for its first checkpoint; then `work` brings the fault. Everything is torn down afterwards.
 */
async function clusterRun<T>(name: string, model: string, nfe: number, coordinator: boolean, work: (r: ClusterRun) => Promise<T>): Promise<T> {
  const folder = await freshFolder(name);
  try {
    return await withCluster(folder, model, coordinator, async (cluster) => {
      const out = join(folder, 'out');
      const run = startCli(processes, ['run', ...runArgs(model, nfe), '--cluster', cluster.nats.url, '--insecure', '--no-progress', '--out', out], timeoutMs);
      if (!coordinator) await until(async () => (await rounds(out)) >= 1, run.proc.running);
      return await work({ cluster, run, out, folder });
    });
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// References: the undisturbed run of each configuration, once.

const references = new Map<string, Promise<Reference>>();

function reference(key: string, make: () => Promise<Reference>): Promise<Reference> {
  let ref = references.get(key);
  if (ref === undefined) {
    ref = make();
    references.set(key, ref);
  }
  return ref;
}

async function referenceFrom(result: CliResult, folder: string, what: string): Promise<Reference> {
  if (!exitOk(result)) throw new Error(`the undisturbed ${what} failed: ${describeExit(result)}`);
  const record = await readRecord(folder);
  return { decisions: decisions(record), wallMs: result.wallMs, roundMs: record.rounds.map((r) => r.ms) };
}

function embeddedReference(name: string, args: readonly string[]): Promise<Reference> {
  return reference(`embedded ${name}`, async () => {
    const folder = await freshFolder('reference');
    try {
      return await referenceFrom(await runCli(processes, ['run', ...args, '--no-progress', '--out', folder], timeoutMs), folder, 'embedded run');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
}

/** The undisturbed cluster run: in the client's process (`coordinator` false) or served by a coordinator. */
function clusterReference(model: string, nfe: number, coordinator: boolean): Promise<Reference> {
  return reference(`cluster ${model} ${nfe} ${coordinator}`, async () => {
    const folder = await freshFolder('reference');
    try {
      return await withCluster(folder, model, coordinator, async (cluster) => {
        const out = join(folder, 'out');
        const result = await runCli(processes, ['run', ...runArgs(model, nfe), '--cluster', cluster.nats.url, '--insecure', '--no-progress', '--out', out], timeoutMs);
        return referenceFrom(result, out, coordinator ? 'coordinator-served run' : 'cluster run');
      });
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
}

const runArgs = (model: string, nfe: number) => ['--model', model, '--budget-nfe', String(nfe), '--seed', String(seed)];

/** Where in the run a cluster fault lands: a random point of the round after the first checkpoint. */
const faultDelay = (ref: Reference) => Math.floor(random() * (ref.roundMs[1] ?? maxDelayMs));

// ---------------------------------------------------------------------------------------------------
// The faults.

const embeddedConfigs: Record<string, string[]> = {
  'evosearch 150k NFEs': ['--budget-nfe', '150000', '--seed', '2'],
  'particles 40k NFEs': ['--method', 'particles', '--budget-nfe', '40000', '--seed', '3'],
  'best-of-n 100k NFEs': ['--method', 'best-of-n', '--budget-nfe', '100000', '--seed', '4'],
};

async function embeddedKill(args: readonly string[], ref: Reference): Promise<Trial> {
  const folder = await freshFolder('embedded-kill');
  try {
    const run = startCli(processes, ['run', ...args, ...snapshotFlag, '--no-progress', '--out', folder], timeoutMs);
    await until(async () => (await rounds(folder)) >= 1, run.proc.running);
    await sleep(Math.floor(random() * maxDelayMs));
    const landed = run.proc.running();
    if (landed) await run.proc.kill('SIGKILL');
    const first = await run.finish;
    if (!landed) {
      if (!exitOk(first)) return failed(`the run ${describeExit(first)}`, first.wallMs);
      return judged(await readRecord(folder), ref, { landed, outcome: 'finished by itself', notes: [], wallMs: first.wallMs });
    }
    const resumed = await runCli(processes, ['resume', folder, '--no-progress'], timeoutMs);
    if (!exitOk(resumed)) return failed(`evosearch resume ${describeExit(resumed)}`, first.wallMs + resumed.wallMs, [], landed);
    return judged(await readRecord(folder), ref, { landed, outcome: 'resumed', notes: [], wallMs: first.wallMs + resumed.wallMs });
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

async function workerKill(model: string, nfe: number, ref: Reference): Promise<Trial> {
  return clusterRun('worker-kill', model, nfe, false, async ({ cluster, run, out, folder }) => {
    await sleep(faultDelay(ref));
    const landed = run.proc.running();
    const victim = cluster.workers[Math.floor(random() * cluster.workers.length)]!;
    if (landed) await victim.proc.kill('SIGKILL');
    const result = await run.finish;
    if (!exitOk(result)) return failed(`the run ${describeExit(result)}`, result.wallMs, [], landed);
    const record = await readRecord(out);
    const notes: string[] = [];
    if (!landed) notes.push('the run finished before the kill');
    else if (record.placement.lostWorkers !== 1) notes.push(`record.json counts ${record.placement.lostWorkers} workers lost after one (${victim.address}) was killed -9`);
    return judged(record, ref, { landed, outcome: 'finished by itself', notes, wallMs: result.wallMs });
  });
}

async function coordinatorStop(model: string, nfe: number, ref: Reference): Promise<Trial> {
  return clusterRun('coordinator-stop', model, nfe, true, async ({ cluster, run, out, folder }) => {
    const coordinator = cluster.coordinator!;
    const servedFolder = () => {
      const id = /submitted run ([0-9a-f-]+)/.exec(run.proc.stdout())?.[1];
      return id === undefined ? null : join(cluster.runsDir, id);
    };
    await until(async () => {
      const f = servedFolder();
      return f !== null && (await rounds(f)) >= 1;
    }, run.proc.running);
    const served = servedFolder();
    await sleep(faultDelay(ref));
    const landed = run.proc.running() && served !== null && !existsSync(join(served, 'record.json'));
    const notes: string[] = [];
    if (landed) coordinator.proc.child.kill('SIGTERM');
    const result = await run.finish;
    if (!landed) {
      if (!exitOk(result)) return failed(`the run ${describeExit(result)}`, result.wallMs);
      return judged(await readRecord(out), ref, { landed, outcome: 'finished by itself', notes: ['the run finished before the coordinator stop'], wallMs: result.wallMs });
    }
    // The coordinator must be gone before the resume takes its run folder.
    const stopped = await Promise.race([coordinator.proc.exited, sleep(60_000).then(() => null)]);
    if (stopped === null) {
      notes.push('the coordinator was still running 60 s after SIGTERM (killed -9)');
      await coordinator.proc.kill('SIGKILL');
    } else if (stopped.code !== 0) notes.push(`the coordinator exited ${stopped.signal ?? stopped.code} after SIGTERM: ${lastLines(coordinator.proc.stderr())}`);
    if (result.code === 0) return failed('the client exited 0 after its coordinator was stopped mid-run', result.wallMs, notes, landed);
    const command = /`(evosearch resume [^`]+)`/.exec(result.stderr)?.[1];
    if (command === undefined) return failed(`the client was not told how to resume (${describeExit(result)})`, result.wallMs, notes, landed);
    notes.push(`the client printed \`${command.replaceAll(folder, '<tmp>')}\``);
    // Run as printed, from a folder of its own (a relative runs/ lands there, not in the bench's cwd).
    const machine = join(folder, 'client-machine');
    await mkdir(machine, { recursive: true });
    const resumed = await runCli(processes, [...command.split(/\s+/).slice(1), '--insecure'], timeoutMs, machine);
    if (!exitOk(resumed)) return failed(`\`${command.replaceAll(folder, '<tmp>')}\` ${describeExit(resumed)}`, result.wallMs + resumed.wallMs, notes, landed);
    const how = /fetched run .* checkpoint from/.test(resumed.stderr) ? "from the checkpoint mirrored in NATS" : /resumed run .* on coordinator/.test(resumed.stdout) ? 'on a coordinator' : 'from a run folder';
    notes[notes.length - 1] += `; it resumed ${how}`;
    const recordPath = /^record: (.+)$/m.exec(resumed.stdout)?.[1]?.trim();
    const resumedFolder = recordPath !== undefined ? join(recordPath, '..') : [join(machine, 'runs', command.split(/\s+/)[2]!), command.split(/\s+/)[2]!].find((f) => existsSync(join(f, 'record.json')));
    if (resumedFolder === undefined || !existsSync(join(resumedFolder, 'record.json'))) return failed(`\`${command.replaceAll(folder, '<tmp>')}\` exited 0 but no record.json was found (stdout: ${lastLines(resumed.stdout, 3)})`, result.wallMs + resumed.wallMs, notes, landed);
    return judged(await readRecord(resumedFolder), ref, { landed, outcome: 'resumed', notes, wallMs: result.wallMs + resumed.wallMs });
  });
}

/** What the cluster's object store holds of a run's checkpoint: the manifest's rounds and the round objects. */
async function mirrorState(url: string, runId: string): Promise<string> {
  try {
    const nc = await connectNats(url, 'kill-trials');
    try {
      const os = await new Objm(nc).create(CHECKPOINTS_BUCKET);
      const manifest = await os.getBlob(`${runId}/manifest`);
      const objects = (await os.list()).filter((o) => o.name.startsWith(`${runId}/round-`)).length;
      const rounds = manifest === null ? null : (JSON.parse(new TextDecoder().decode(manifest)) as { rounds: number }).rounds;
      return `NATS held ${rounds === null ? 'no manifest' : `a manifest of ${rounds} rounds`} and ${objects} round objects`;
    } finally {
      await closeNats(nc);
    }
  } catch (error) {
    return `NATS's mirror could not be read: ${(error as Error).message}`;
  }
}

/** Waits until the cluster's object store holds a manifest of the run (the mirror trails the folder), or `alive` fails. */
async function waitForMirror(url: string, runId: string, alive: () => boolean): Promise<boolean> {
  const nc = await connectNats(url, 'kill-trials');
  try {
    const os = await new Objm(nc).create(CHECKPOINTS_BUCKET);
    return await until(async () => (await os.getBlob(`${runId}/manifest`)) !== null, alive, 20);
  } finally {
    await closeNats(nc);
  }
}

/** Resume of a run from its checkpoint in NATS into an empty runs-dir ("another machine"). */
async function resumeElsewhere(cluster: Cluster, runId: string, folder: string): Promise<{ result: CliResult; record: RunRecord | null; fetched: boolean }> {
  const elsewhere = join(folder, 'elsewhere');
  await mkdir(elsewhere, { recursive: true });
  const result = await runCli(processes, ['resume', runId, '--cluster', cluster.nats.url, '--insecure', '--runs-dir', elsewhere, '--no-progress'], timeoutMs, elsewhere);
  const fetched = /fetched run .* checkpoint from/.test(result.stderr);
  const record = exitOk(result) && existsSync(join(elsewhere, runId, 'record.json')) ? await readRecord(join(elsewhere, runId)) : null;
  return { result, record, fetched };
}

/** nats-server killed and restarted mid-run: the run's own trial, and the resume of its mirror elsewhere. */
async function natsRestart(model: string, nfe: number, ref: Reference): Promise<[Trial, Trial]> {
  return clusterRun('nats-restart', model, nfe, false, async ({ cluster, run, out, folder }) => {
    await sleep(faultDelay(ref));
    const landed = run.proc.running();
    if (landed) await cluster.nats.restart(natsDownMs);
    const result = await run.finish;
    if (!exitOk(result)) return [failed(`the run ${describeExit(result)}`, result.wallMs, [], landed), failed('not tried: the run failed', 0, [], landed)];
    const own = judged(await readRecord(out), ref, { landed, outcome: 'finished by itself', notes: landed ? [] : ['the run finished before NATS went down'], wallMs: result.wallMs });
    const runId = await runIdOf(out);
    const held = await mirrorState(cluster.nats.url, runId);
    const away = await resumeElsewhere(cluster, runId, folder);
    if (!exitOk(away.result)) return [own, failed(`evosearch resume ${runId} --cluster … --runs-dir <empty> (${await rounds(out)} rounds in the finished run's folder; ${held}) ${describeExit(away.result)}`, away.result.wallMs, [], landed)];
    if (away.record === null) return [own, failed(`evosearch resume exited 0 but wrote no record.json under the other runs-dir (stdout: ${lastLines(away.result.stdout)})`, away.result.wallMs, [], landed)];
    const notes = away.fetched ? [] : ['resume did not say it fetched the checkpoint from NATS'];
    return [own, judged(away.record, ref, { landed, outcome: 'resumed', notes, wallMs: away.result.wallMs, extraMs: away.result.wallMs })];
  });
}

/**
 * Once NATS holds the run's first mirrored checkpoint, nats-server is killed at a random point of the
 * next round and restarted; the client is killed -9 a moment (0–max-delay-ms) after NATS is back, and
 * the run is resumed from NATS on "another machine".
 */
async function natsRestartClientKill(model: string, nfe: number, ref: Reference): Promise<Trial> {
  return clusterRun('nats-restart-client-kill', model, nfe, false, async ({ cluster, run, out, folder }) => {
    const notes: string[] = [];
    if (!run.proc.running()) {
      const result = await run.finish;
      return failed(`the run ended before its first checkpoint was seen: ${describeExit(result)}`, result.wallMs);
    }
    const runId = await runIdOf(out);
    const mirrored = await waitForMirror(cluster.nats.url, runId, run.proc.running);
    if (mirrored) {
      notes.push(`NATS had the first mirrored checkpoint when the folder had ${await rounds(out)} rounds`);
      await sleep(faultDelay(ref));
    }
    if (run.proc.running()) {
      await cluster.nats.restart(natsDownMs);
      await sleep(Math.floor(random() * maxDelayMs));
    }
    const landed = run.proc.running();
    if (landed) await run.proc.kill('SIGKILL');
    else notes.push(`the run finished before the client kill${mirrored ? '' : ' (and before NATS held any mirrored checkpoint of it)'}`);
    const first = await run.finish;
    if (!landed && !exitOk(first)) return failed(`the run ${describeExit(first)}`, first.wallMs);
    const localRounds = await rounds(out);
    notes.push(`at the kill ${localRounds} rounds were checkpointed locally; then ${await mirrorState(cluster.nats.url, runId)}`);
    // "Another machine": nothing of the run on disk, only the cluster.
    await rm(out, { recursive: true, force: true });
    const away = await resumeElsewhere(cluster, runId, folder);
    const wallMs = first.wallMs + away.result.wallMs;
    if (!exitOk(away.result)) return failed(`evosearch resume ${runId} --cluster … --runs-dir <empty> (the killed run had ${localRounds} rounds checkpointed locally) ${describeExit(away.result)}`, wallMs, notes, landed);
    if (away.record === null) return failed(`evosearch resume exited 0 but wrote no record.json under the other runs-dir (stdout: ${lastLines(away.result.stdout)})`, wallMs, notes, landed);
    if (!away.fetched) notes.push('resume did not say it fetched the checkpoint from NATS');
    return judged(away.record, ref, { landed, outcome: 'resumed', notes, wallMs });
  });
}

// ---------------------------------------------------------------------------------------------------
// The bench.

const rows: Row[] = [];
const progress = (line: string) => process.stderr.write(`kill-trials: ${line}\n`);

/** The rows a fault fills (one per configuration, or a fault's own run plus a check after it). */
interface RowSpec {
  readonly fault: string;
  readonly configuration: string;
}

async function trialsOf(specs: readonly RowSpec[], makeReference: () => Promise<Reference>, trial: (ref: Reference) => Promise<Trial | Trial[]>): Promise<void> {
  const own: Row[] = specs.map((s) => ({ fault: s.fault, configuration: s.configuration, reference: { error: 'not run' }, trials: [], benchMs: [] }));
  rows.push(...own);
  const fault = specs[0]!.fault;
  let ref: Reference;
  try {
    progress(`${fault} (${specs[0]!.configuration}): undisturbed run`);
    ref = await makeReference();
  } catch (error) {
    for (const row of own) row.reference = { error: (error as Error).message };
    progress(`${fault}: ${(error as Error).message}`);
    return;
  }
  for (const row of own) row.reference = ref;
  progress(`${fault}: undisturbed ${(ref.wallMs / 1000).toFixed(1)} s`);
  for (let t = 0; t < trials; t++) {
    const started = performance.now();
    let results: Trial[];
    try {
      const r = await trial(ref);
      results = Array.isArray(r) ? r : [r];
    } catch (error) {
      const where = ((error as Error).stack ?? '').split('\n').find((l) => l.includes('kill-trials.js'))?.trim() ?? '';
      results = own.map(() => failed(`the bench's trial threw: ${(error as Error).message} ${where}`));
    }
    results.forEach((r, i) => {
      own[i]!.trials.push(r);
      own[i]!.benchMs.push(performance.now() - started);
    });
    progress(`${fault} trial ${t + 1}/${trials} (${((performance.now() - started) / 1000).toFixed(1)} s): ${results.map((r) => `${r.outcome}${r.identical ? ', identical' : ''}${r.error ? ` – ${r.error}` : ''}`).join(' | ')}`);
  }
}

const videoModel = `analytic:gmm?dimension=${videoDimension}`;
const bigConfig = `analytic:gmm (d=8), ${budget} NFEs, seed ${seed}, ${workerCount} workers`;
const videoConfig = `analytic:gmm?dimension=${videoDimension} (${((videoDimension * 4) / 1024).toFixed(0)} KiB per latent), ${videoBudget} NFEs, seed ${seed}, ${workerCount} workers`;

const stop = async (signal: NodeJS.Signals) => {
  progress(`${signal}: ending every child and removing ${dir}`);
  await processes.killAll();
  await rm(dir, { recursive: true, force: true });
  process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
};
process.once('SIGINT', (s) => void stop(s));
process.once('SIGTERM', (s) => void stop(s));

const benchStarted = performance.now();
try {
  for (const fault of faults as Fault[]) {
    switch (fault) {
      case 'embedded-kill':
        for (const [name, args] of Object.entries(embeddedConfigs)) {
          await trialsOf([{ fault, configuration: `${name} (local threads${snapshotFlag.length > 0 ? ', --no-snapshots' : ''})` }], () => embeddedReference(name, args), (ref) => embeddedKill(args, ref));
        }
        break;
      case 'worker-kill':
        await trialsOf([{ fault, configuration: bigConfig }], () => clusterReference('analytic:gmm', budget, false), (ref) => workerKill('analytic:gmm', budget, ref));
        break;
      case 'coordinator-stop':
        await trialsOf([{ fault, configuration: `${bigConfig}, served by a coordinator` }], () => clusterReference('analytic:gmm', budget, true), (ref) => coordinatorStop('analytic:gmm', budget, ref));
        break;
      case 'nats-restart':
        await trialsOf(
          [
            { fault, configuration: bigConfig },
            { fault: `${fault} → resume from NATS elsewhere`, configuration: 'the same run once finished, resumed from its mirrored checkpoint into an empty runs-dir' },
          ],
          () => clusterReference('analytic:gmm', budget, false),
          (ref) => natsRestart('analytic:gmm', budget, ref),
        );
        break;
      case 'nats-restart-client-kill':
        await trialsOf([{ fault, configuration: `${bigConfig}; resumed from NATS into an empty runs-dir` }], () => clusterReference('analytic:gmm', budget, false), (ref) => natsRestartClientKill('analytic:gmm', budget, ref));
        break;
      case 'video-worker-kill':
        await trialsOf([{ fault, configuration: videoConfig }], () => clusterReference(videoModel, videoBudget, false), (ref) => workerKill(videoModel, videoBudget, ref));
        break;
      case 'video-coordinator-stop':
        await trialsOf([{ fault, configuration: `${videoConfig}, served by a coordinator` }], () => clusterReference(videoModel, videoBudget, true), (ref) => coordinatorStop(videoModel, videoBudget, ref));
        break;
    }
  }
} finally {
  await processes.killAll();
  await rm(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------
// The table.

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mean = (xs: readonly number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
const count = (ts: readonly Trial[], p: (t: Trial) => boolean) => ts.filter(p).length;

function outcomeCell(ts: readonly Trial[]): string {
  const parts = (['finished by itself', 'resumed', 'failed'] as const).map((o) => [o, count(ts, (t) => t.outcome === o)] as const).filter(([, n]) => n > 0).map(([o, n]) => `${n} ${o}`);
  return parts.join(', ') || '–';
}

function rebuildCell(ts: readonly Trial[]): string {
  const done = ts.filter((t) => t.rebuilt !== undefined);
  if (done.length === 0) return '–';
  const lost = mean(done.map((t) => t.lost!));
  const restored = mean(done.map((t) => t.restored!));
  return `${lost.toFixed(1)} lost; ${Math.round(mean(done.map((t) => t.rebuilt!)))} rebuilt, ${Math.round(mean(done.map((t) => t.rebuildNfe!)))} NFEs${restored > 0 ? `; ${Math.round(restored)} loaded from snapshots` : ''}`;
}

function wallCell(row: Row): string {
  if ('error' in row.reference) return '–';
  const ref = row.reference.wallMs;
  const done = row.trials.filter((t) => t.outcome !== 'failed');
  if (done.length === 0) return '–';
  const extras = done.map((t) => t.extraMs ?? t.wallMs - ref);
  const mid = done.some((t) => t.extraMs !== undefined) ? '' : `×${(median(done.map((t) => t.wallMs)) / ref).toFixed(2)} (medians); `;
  const sign = (x: number) => (x >= 0 ? '+' : '−');
  return `${mid}${sign(mean(extras))}${Math.abs(mean(extras) / 1000).toFixed(1)} s mean${done.some((t) => t.extraMs !== undefined) ? ' (the resume alone)' : ''}`;
}

const lines: string[] = [];
lines.push(`\`node dist/bench/kill-trials.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\``);
lines.push('');
lines.push(`${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, Node ${process.versions.node}, ${new Date().toISOString()}; ${trials} trial(s) per fault, bench seed ${seed}, cluster faults land at a random point of the round after the first checkpoint (NATS down ${natsDownMs} ms); ${((performance.now() - benchStarted) / 1000).toFixed(0)} s in all.`);
if (faults.some((f) => f.startsWith('video-'))) lines.push(`Video-sized rows: ${videoModel}, ${videoDimension.toLocaleString('en')} floats (${((videoDimension * 4) / 1024).toFixed(0)} KiB) per latent; a Wan2.1-1.3B latent is 16×21×60×104 ≈ 2.1M floats (8.2 MiB)${videoDimension < 2096640 ? `, ${Math.round(2096640 / videoDimension)}× more` : ''}.`);
lines.push('');
lines.push('| fault | configuration | trials | fault landed mid-run | finished by itself / resumed | identical to the undisturbed run | workers lost, states rebuilt and rebuild NFEs (mean) | undisturbed wall s | wall-time cost vs undisturbed | bench s per trial |');
lines.push('|---|---|---|---|---|---|---|---|---|---|');
for (const row of rows) {
  const ts = row.trials;
  const refWall = 'error' in row.reference ? 'failed' : (row.reference.wallMs / 1000).toFixed(1);
  lines.push(`| ${row.fault} | ${row.configuration} | ${ts.length} | ${count(ts, (t) => t.landed)} | ${outcomeCell(ts)} | ${count(ts, (t) => t.identical)} of ${ts.length} | ${rebuildCell(ts)} | ${refWall} | ${wallCell(row)} | ${row.benchMs.length === 0 ? '–' : (mean(row.benchMs) / 1000).toFixed(0)} |`);
}
const legend: Record<string, string> = {
  'embedded-kill': '`evosearch run` on local threads killed -9 after its first checkpoint + 0–max-delay-ms, then `evosearch resume <folder>`',
  'worker-kill': `one of the ${workerCount} \`evosearch worker\`s killed -9 during the round after the first checkpoint of \`evosearch run --cluster\`; the run must finish by itself`,
  'coordinator-stop': 'SIGTERM to the `evosearch coordinator` serving `evosearch run --cluster`, during the round after the first checkpoint; the `evosearch resume …` the client prints is run as printed',
  'nats-restart': `nats-server killed -9 during the round after the first checkpoint, restarted on the same port and store after ${natsDownMs} ms; the run must finish by itself; then \`evosearch resume <id> --cluster … --runs-dir <empty>\` from its mirror`,
  'nats-restart-client-kill': `once NATS holds the first mirrored checkpoint, nats-server killed -9 during the next round and restarted after ${natsDownMs} ms; the client killed -9 0–${maxDelayMs} ms after NATS is back, its folder deleted, \`evosearch resume <id> --cluster … --runs-dir <empty>\``,
  'video-worker-kill': 'worker-kill with video-sized latents',
  'video-coordinator-stop': 'coordinator-stop with video-sized latents',
};
lines.push('');
lines.push('Faults: ' + faults.map((f) => `**${f}**: ${legend[f]}`).join('; ') + '. Rebuild figures are those of the final record: the run itself (worker-kill) or the resume (the others).');
const problems: string[] = [];
for (const row of rows) {
  if ('error' in row.reference && row.reference.error !== 'not run') problems.push(`- **${row.fault}**, undisturbed run: ${row.reference.error}`);
  row.trials.forEach((t, i) => {
    if (t.error !== undefined) problems.push(`- **${row.fault}** trial ${i + 1}: ${t.error}`);
    for (const note of t.notes) problems.push(`- ${row.fault} trial ${i + 1} (note): ${note}`);
  });
}
if (problems.length > 0) {
  lines.push('');
  lines.push('Failures and notes:');
  lines.push('');
  lines.push(...problems);
}
console.log(lines.join('\n'));
