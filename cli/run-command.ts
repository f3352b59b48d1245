import { constants as osConstants } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { RunCancelledError } from '../coordinator/engine/run-search.js';
import { runSearchToFolder } from '../coordinator/run/run-search-to-folder.js';
import { claimRunFolder } from '../coordinator/run/run-folder-lock.js';
import { ConfigError, type RunPlan } from '../config/resolve-run-config.js';
import type { RunConfigInput } from '../config/run-config-schema.js';
import type { PromptReport } from '../report/report-data.js';
import { writeSummaryReport } from '../report/write-outputs.js';
import { createRunLogger } from './logger.js';
import { ProgressDisplay } from './progress.js';
import { checkHeldOut, describeHeldOutCheck, scoredSamples } from '../report/held-out-check.js';
import { addRunOptions, planFromOptions } from './run-options.js';
import { addTransportOptions, transportFrom } from './transport-options.js';
import type { TransportSecurity } from '../proto/transport-security.js';
import { CoordinatorClient } from '../coordinator/service/coordinator-client.js';
import { describeWorkers, findCoordinators, followRun } from './coordinator-runs.js';
import { OutFolderError, prepareOutFolder } from '../files/out-folder.js';
import { PromptModelError } from '../world/model-prompts.js';
import { PromptError, VOCABULARY } from '../world/prompt-grammar.js';
import { installStopDeadline } from './stop-signals.js';
import { columnOfWord, PromptsFileError, readPromptsFile, type PromptLine, type PromptsFileIssue } from './prompts-file.js';
import { followUpCommand, followUpOf, NO_FOLLOW_UP, type FollowUp } from './follow-up-flags.js';

export function buildRunCommand(): Command {
  const command = new Command('run').description(
    'Run one search in this process (worker threads, no servers) and write a run folder: record.json (every candidate with reward, lineage, step and counters), config.json, best-sample.json, run.log, and for image/video models best.png, population.png, best.gif + best.mp4 (video) and report.html.',
  );
  addRunOptions(command);
  addTransportOptions(command);
  command.option('--replace', 'when --out holds a run (finished or resumable), discard it and run there (default: refuse the folder)');
  command.option('--prompts <file>', 'run one search per prompt of this file (one per line, # comments), each in its own subfolder of --out, and write a summary report.html');
  command.action(async (_options, cmd: Command) => {
    await runAction(cmd);
  });
  return command;
}

function defaultFolder(plan: RunPlan): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return join('runs', `${stamp}-${plan.method}-seed${plan.seed}`);
}

/** One search per prompt of a prompts file: each in its own subfolder, then a summary report. */
async function runAction(cmd: Command): Promise<void> {
  const promptsFile = cmd.getOptionValue('prompts') as string | undefined;
  if (promptsFile === undefined) {
    const { plan, flags, input } = await planFromOptions(cmd);
    await runOne(plan, flags, resolve(plan.out ?? defaultFolder(plan)), input, cmd.getOptionValue('replace') === true, grpcTransport(cmd, plan), followUpOf(cmd));
    return;
  }
  if (cmd.getOptionValueSource('prompt') === 'cli') throw new ConfigError('--prompts', 'give either --prompt or --prompts, not both', 'command-line flags');
  // The whole file, then every prompt's plan, before any search: a bad line 2 must not cost prompt 1's compute.
  const lines = await readPromptsFile(promptsFile);
  const planned = await planPrompts(cmd, promptsFile, lines);
  const prompts = lines.map((l) => l.text);
  const { plan: first } = planned[0]!;
  const transport = grpcTransport(cmd, first);
  const root = resolve(first.out ?? defaultFolder(first));
  await prepareOut(root);
  const folderOf = (i: number, prompt: string) => join(root, `${String(i + 1).padStart(3, '0')}-${slug(prompt)}`);
  const [coordinator] = first.cluster === undefined ? [] : await findCoordinators(first.cluster);
  if (coordinator !== undefined) {
    // On a cluster the prompts' searches share the workers at once (a worker holds several runs).
    const reports = await inBatches(prompts, PROMPTS_AT_ONCE, async (prompt, i) => {
      const { plan, input } = await planFromOptions(cmd, { prompt, progress: false });
      return runOnCoordinator(coordinator, plan, input, folderOf(i, prompt), transport, followUpOf(cmd));
    });
    const { files } = writeSummaryReport(root, { title: `EvoSearch: ${prompts.length} prompts`, prompts: reports });
    process.stdout.write(`summary: ${files.join(', ')}\n`);
    return;
  }
  const reports: PromptReport[] = [];
  for (const [i, prompt] of prompts.entries()) {
    const { plan, flags, input } = planned[i]!;
    const folder = folderOf(i, prompt);
    process.stdout.write(`[${i + 1}/${prompts.length}] ${prompt}\n`);
    reports.push(await runOne(plan, flags, folder, input, cmd.getOptionValue('replace') === true, transport, followUpOf(cmd)));
  }
  const { files } = writeSummaryReport(root, { title: `EvoSearch: ${prompts.length} prompts`, prompts: reports });
  process.stdout.write(`summary: ${files.join(', ')}\n`);
}

/**
 * The plan of every prompt of a prompts file; every line the model cannot take (outside its grammar, a
 * motion prompt for an image model, …) is collected, so one error names them all, with line and column.
 * Errors that are not about a line (the flags, the config, the model) are thrown as they come.
 */
async function planPrompts(cmd: Command, file: string, prompts: readonly PromptLine[]): Promise<Awaited<ReturnType<typeof planFromOptions>>[]> {
  const planned: Awaited<ReturnType<typeof planFromOptions>>[] = [];
  const issues: PromptsFileIssue[] = [];
  const footers = new Set<string>();
  for (const prompt of prompts) {
    try {
      const result = await planFromOptions(cmd, { prompt: prompt.text });
      planned.push(result);
    } catch (error) {
      const cause = error instanceof ConfigError && error.field === 'prompt' ? error.cause : error;
      if (cause instanceof PromptError) {
        issues.push({ line: prompt.line, column: columnOfWord(prompt, cause.position), message: `${cause.reason}; allowed here: ${cause.expected.join(' | ')}` });
        footers.add(`the model's prompts follow models/world/WORLD.md's grammar, in these words: ${VOCABULARY.join(' ')}`);
      } else if (cause instanceof PromptModelError) {
        issues.push({ line: prompt.line, column: columnOfWord(prompt, Math.max(0, cause.position)), message: cause.summary });
        footers.add(`the model '${cause.model}' ${cause.advice}`);
      } else {
        throw error;
      }
    }
  }
  if (issues.length > 0) throw PromptsFileError.forLines(file, issues, prompts.length, 'prompts', footers.size > 0 ? [...footers].join('\n') : undefined);
  return planned;
}

/**
 * Creates the run folder and checks a file can be written and renamed in it, before any model opens
 * (files/out-folder.ts). A filesystem that never answered may leave a call pending that would keep the
 * process alive: then the process ends shortly after the error is printed.
 */
async function prepareOut(folder: string): Promise<void> {
  try {
    await prepareOutFolder(folder);
  } catch (error) {
    if (error instanceof OutFolderError && error.timedOut) setTimeout(() => process.exit(), 1000).unref();
    throw error;
  }
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 48) || 'prompt';
}

/**
 * How a run that talks gRPC (--workers-at, --cluster) secures it, from the TLS flags or --insecure;
 * undefined for a run on local threads, which needs neither. A client certificate submits to a
 * coordinator; a coordinator certificate drives workers itself.
 */
function grpcTransport(cmd: Command, plan: RunPlan): TransportSecurity | undefined {
  if (plan.cluster === undefined && plan.workersAt === undefined) return undefined;
  return transportFrom(cmd, ['coordinator', 'client', 'admin']);
}

async function runOne(plan: RunPlan, flags: RunConfigInput, folder: string, input: RunConfigInput, replace: boolean, transport: TransportSecurity | undefined, followUp: FollowUp): Promise<PromptReport> {
  await prepareOut(folder);
  // Refuses a folder holding another run, or one another process is writing, before any work.
  const lock = claimRunFolder(folder, { replace });
  try {
    return await runInFolder(plan, flags, folder, input, transport, followUp);
  } finally {
    lock.release();
  }
}

async function runInFolder(plan: RunPlan, flags: RunConfigInput, folder: string, input: RunConfigInput, transport: TransportSecurity | undefined, followUp: FollowUp): Promise<PromptReport> {
  if (plan.cluster !== undefined) {
    const [coordinator] = await findCoordinators(plan.cluster);
    if (coordinator !== undefined) return runOnCoordinator(coordinator, plan, input, folder, transport, followUp);
  }
  // A run over gRPC or NATS is resumed with the same certificates and credentials.
  const resume = followUpCommand(`resume ${folder}`, plan.cluster !== undefined || plan.workersAt !== undefined ? followUp : NO_FOLLOW_UP);
  const showBar = plan.progress !== false && process.stderr.isTTY === true;
  const terminalLevel = plan.logLevel !== 'info' || flags.logLevel !== undefined ? plan.logLevel : 'warn';
  const logger = createRunLogger({ file: join(folder, 'run.log'), fileLevel: plan.logLevel, terminalLevel: showBar ? 'warn' : terminalLevel });
  const planned = plan.planned[plan.method];
  // A bar on a terminal, plain lines every few seconds elsewhere (--no-progress: neither), shown at once.
  const progress = new ProgressDisplay(plan.progress !== false, planned.nfe);
  progress.begin('opening models…');
  // SIGTERM or Ctrl-C stops the run (gRPC workers at once, local threads after their batch in flight);
  // every finished round is checkpointed, so it is resumable.
  const stop = new AbortController();
  const onSignal = (signal: string) => stop.abort(signal);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // A round can outlast the user's patience: past a grace period (or on a second signal) the process
  // ends at once; its last complete round is checkpointed.
  const endStopDeadline = installStopDeadline({ what: 'the run', hint: `its last complete round is checkpointed; continue with: ${resume}` });
  try {
    const { record, paths, report, outputs } = await runSearchToFolder(plan, { folder, logger, signal: stop.signal, eventLog: true, onRound: (r) => progress.update(r), ...(transport !== undefined ? { transport } : {}) });
    progress.stop();
    const best = record.best === null ? 'none' : `${record.best.reward.toFixed(6)} (candidate ${record.best.candidate})`;
    const heldOut = Object.entries(record.best?.metrics ?? {}).map(([name, value]) => `${name} ${value.toFixed(4)}`).join(', ');
    report.scored ??= scoredSamples(record.candidates);
    const check = checkHeldOut(report.best, report.scored);
    process.stdout.write(
      `${plan.method} on ${plan.model}: best reward ${best}${heldOut ? `; held-out: ${heldOut}` : ''}\n` +
        (check?.verdict === 'disagree' ? `warning: ${describeHeldOutCheck(check)}\n` : '') +
        `spent ${record.spent.nfe} NFEs (planned ${planned.nfe}, budget ${plan.budgetNfe}), ${record.spent.forwardPasses} forward passes, ${record.spent.decodes} decodes, ${record.spent.rewardCalls} reward calls in ${(record.wallMs / 1000).toFixed(2)} s${plan.cluster !== undefined || plan.workersAt !== undefined ? ` on ${describeWorkers(record)}` : ''}\n` +
        `record: ${paths.record}\n` +
        `report: ${outputs.find((f) => f.endsWith('report.html')) ?? 'none'}\n`,
    );
    return report;
  } catch (error) {
    if (error instanceof RunCancelledError) {
      progress.stop();
      process.stderr.write(`evosearch: stopped by ${String(stop.signal.reason)}; continue with: ${resume}\n`);
      // As a shell reports a process ended by the signal: 128 + its number (130 Ctrl-C, 143 SIGTERM).
      process.exitCode = 128 + (osConstants.signals[stop.signal.reason as NodeJS.Signals] ?? 2);
      return emptyReport(plan);
    }
    throw error;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    endStopDeadline();
    progress.stop();
    logger.flush();
  }
}

/** What a prompts-file summary shows for a run that was stopped before it finished. */
function emptyReport(plan: RunPlan): PromptReport {
  return { prompt: plan.prompt ?? null, method: plan.method, model: plan.model, budgetNfe: plan.budgetNfe, spent: { nfe: 0, forwardPasses: 0, decodes: 0, rewardCalls: 0 }, wallMs: 0, bytesMoved: 0, best: { reward: Number.NaN, metrics: {}, sample: null }, rounds: [], population: [], lineage: [] };
}

/** Prompts of one prompts file searched at once on a cluster (each worker holds up to 8 runs). */
const PROMPTS_AT_ONCE = 4;

/** `work` over `items`, at most `limit` at a time; results in the items' order. */
async function inBatches<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** Submits the run to a coordinator, shows its progress, and downloads its folder. */
async function runOnCoordinator(address: string, plan: RunPlan, input: RunConfigInput, folder: string, transport: TransportSecurity | undefined, followUp: FollowUp): Promise<PromptReport> {
  const client = new CoordinatorClient(address, transport);
  try {
    const { out: _out, progress: _progress, ...config } = input;
    const { runId, plan: served } = await client.submit(config);
    process.stdout.write(`submitted run ${runId} to coordinator ${address}\n`);
    const record = await followRun(client, runId, served, plan.progress !== false, plan.cluster!, folder, followUp);
    // The summary of a prompts file needs only the figures; the run's own report.html has the rest.
    return {
      prompt: plan.prompt ?? null,
      method: plan.method,
      model: plan.model,
      budgetNfe: plan.budgetNfe,
      spent: record.spent,
      wallMs: record.wallMs,
      bytesMoved: record.placement.bytesMoved,
      best: { reward: record.best?.reward ?? Number.NaN, metrics: record.best?.metrics ?? {}, sample: null },
      rounds: [],
      population: [],
      lineage: [],
    };
  } finally {
    client.close();
  }
}
