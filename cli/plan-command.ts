import { Command } from 'commander';
import { describeSchedule } from '../config/describe-schedule.js';
import type { RunPlan } from '../config/resolve-run-config.js';
import { METHOD_NAMES } from '../search/machine.js';
import { addRunOptions, planFromOptions } from './run-options.js';

/** Markdown table of what every method would spend at the plan's budget. */
export function formatPlan(plan: RunPlan): string {
  const steps = plan.sampler.steps;
  const rows = METHOD_NAMES.map((method) => {
    const spend = plan.planned[method];
    const mark = method === plan.method ? ' (chosen)' : '';
    const why = plan.unavailable[method];
    if (why !== undefined) return `| ${method} | not possible at this budget: ${why} | – | – | – | – |`;
    return `| ${method}${mark} | ${describeSchedule(plan, method)} | ${spend.nfe} | ${spend.trajectories.toFixed(2)} | ${spend.decodes} | ${spend.rewardCalls} |`;
  });
  return [
    `budget ${plan.budgetNfe} NFEs, preset ${plan.preset}, sampler ${plan.sampler.kind} with ${steps} steps, seed ${plan.seed}`,
    '',
    '| method | schedule | NFE | trajectories | decodes | reward calls |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

export function buildPlanCommand(): Command {
  const command = new Command('plan').description('Print the schedules and the compute each method would spend at the configured budget, without running anything.');
  addRunOptions(command);
  command.option('--json', 'print the whole resolved plan as JSON');
  command.action(async (options: { json?: boolean }, cmd: Command) => {
    const { plan } = await planFromOptions(cmd);
    process.stdout.write(options.json ? `${JSON.stringify(plan, null, 2)}\n` : `${formatPlan(plan)}\n`);
  });
  return command;
}
