import { Command, CommanderError } from 'commander';
import { buildCertsCommand } from './certs-command.js';
import { ERROR_CODES, EvoSearchError } from '../errors/evosearch-error.js';
import { buildPlanCommand } from './plan-command.js';
import { versionText } from './version.js';
import { buildRunCommand } from './run-command.js';
import { buildWorkerCommand } from './worker-command.js';
import { buildCoordinatorCommand } from './coordinator-command.js';
import { buildResumeCommand, buildRunsCommand } from './resume-command.js';
import { buildInstallCudaCommand } from './install-cuda-command.js';
import { buildHealthCommand } from './health-command.js';
import { buildViewCommand } from './view-command.js';
import { buildTokenCommand } from './token-command.js';

/** `evosearch <command>`: the user's entry point. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('evosearch')
    .description('Test-time evolutionary search over denoising trajectories (EvoSearch), with Best-of-N and particle sampling as baselines.')
    .version(versionText(), '-V, --version', 'print the version and exit')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  program.addCommand(buildRunCommand().exitOverride());
  program.addCommand(buildPlanCommand().exitOverride());
  program.addCommand(buildWorkerCommand().exitOverride());
  program.addCommand(buildCoordinatorCommand().exitOverride());
  program.addCommand(buildResumeCommand().exitOverride());
  program.addCommand(buildRunsCommand().exitOverride());
  program.addCommand(buildInstallCudaCommand().exitOverride());
  program.addCommand(buildCertsCommand().exitOverride());
  program.addCommand(buildHealthCommand().exitOverride());
  program.addCommand(buildViewCommand().exitOverride());
  program.addCommand(buildTokenCommand().exitOverride());
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end "with" exit code 0; a usage error was already printed by commander.
      process.exitCode = error.exitCode === 0 ? 0 : ERROR_CODES.usage;
      return;
    }
    if (error instanceof EvoSearchError) {
      process.stderr.write(`evosearch: ${error.message}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    // Anything else is a bug here: its stack is what a report needs.
    throw error;
  }
}
