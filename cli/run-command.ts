import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { runEmbedded } from '../coordinator/run/embedded-run.js';
import type { RunPlan } from '../config/resolve-run-config.js';
import { createRunLogger } from './logger.js';
import { ProgressDisplay } from './progress.js';
import { addRunOptions, planFromOptions } from './run-options.js';

export function buildRunCommand(): Command {
  const command = new Command('run').description(
    'Run one search in this process (worker threads, no servers) and write a run folder: record.json (every candidate with reward, lineage, step and counters), config.json, best-sample.json, run.log.',
  );
  addRunOptions(command);
  command.action(async (_options, cmd: Command) => {
    await runAction(cmd);
  });
  return command;
}

function defaultFolder(plan: RunPlan): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return join('runs', `${stamp}-${plan.method}-seed${plan.seed}`);
}

async function runAction(cmd: Command): Promise<void> {
  const { plan, flags } = await planFromOptions(cmd);
  const folder = resolve(plan.out ?? defaultFolder(plan));
  await mkdir(folder, { recursive: true });
  const showBar = plan.progress !== false && process.stderr.isTTY === true;
  const terminalLevel = plan.logLevel !== 'info' || flags.logLevel !== undefined ? plan.logLevel : 'warn';
  const logger = createRunLogger({ file: join(folder, 'run.log'), fileLevel: plan.logLevel, terminalLevel: showBar ? 'warn' : terminalLevel });
  const planned = plan.planned[plan.method];
  const progress = new ProgressDisplay(showBar, planned.nfe);
  try {
    const { record, paths } = await runEmbedded(plan, { folder, logger, onRound: (report) => progress.update(report) });
    progress.stop();
    const best = record.best === null ? 'none' : `${record.best.reward.toFixed(6)} (candidate ${record.best.candidate})`;
    process.stdout.write(
      `${plan.method} on ${plan.model}: best reward ${best}\n` +
        `spent ${record.spent.nfe} NFEs (planned ${planned.nfe}, budget ${plan.budgetNfe}), ${record.spent.forwardPasses} forward passes, ${record.spent.decodes} decodes, ${record.spent.rewardCalls} reward calls in ${(record.wallMs / 1000).toFixed(2)} s\n` +
        `record: ${paths.record}\n`,
    );
  } finally {
    progress.stop();
    logger.flush();
  }
}
