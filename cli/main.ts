import { RunFolderError } from '../coordinator/run/run-folder-lock.js';
import { Command, CommanderError } from 'commander';
import { NoWorkersError } from '../cluster/cluster-workers.js';
import { CheckpointError } from '../coordinator/checkpoint/checkpoint-store.js';
import { CoordinatorError } from '../coordinator/service/coordinator-client.js';
import { NatsUnavailableError } from '../cluster/nats-connection.js';
import { ConfigError } from '../config/resolve-run-config.js';
import { WorkerCommandError } from '../coordinator/engine/worker-pool.js';
import { WorkerRefusedError } from '../coordinator/transport/grpc-pool.js';
import { buildPlanCommand } from './plan-command.js';
import { buildRunCommand } from './run-command.js';
import { buildWorkerCommand } from './worker-command.js';
import { buildCoordinatorCommand } from './coordinator-command.js';
import { buildResumeCommand, buildRunsCommand } from './resume-command.js';
import { buildInstallCudaCommand } from './install-cuda-command.js';
import { CudaProviderError } from '../worker/runtime/cuda-provider/index.js';

/** `evosearch <command>`: the user's entry point. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('evosearch')
    .description('Test-time evolutionary search over denoising trajectories (EvoSearch), with Best-of-N and particle sampling as baselines.')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  program.addCommand(buildRunCommand().exitOverride());
  program.addCommand(buildPlanCommand().exitOverride());
  program.addCommand(buildWorkerCommand().exitOverride());
  program.addCommand(buildCoordinatorCommand().exitOverride());
  program.addCommand(buildResumeCommand().exitOverride());
  program.addCommand(buildRunsCommand().exitOverride());
  program.addCommand(buildInstallCudaCommand().exitOverride());
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" with exit code 0; usage errors were already printed.
      process.exitCode = error.exitCode;
      return;
    }
    if (error instanceof WorkerRefusedError || error instanceof WorkerCommandError || error instanceof NoWorkersError || error instanceof NatsUnavailableError || error instanceof CoordinatorError || error instanceof CheckpointError) {
      process.stderr.write(`evosearch: ${error.message}\n`);
      process.exitCode = 3;
      return;
    }
    if (error instanceof CudaProviderError) {
      // A wrong source, archive or hash fails again the same way (2); a folder or the network may not (3).
      process.stderr.write(`evosearch: ${error.message}\n`);
      process.exitCode = error.kind === 'io' ? 3 : 2;
      return;
    }
    if (error instanceof ConfigError || error instanceof RunFolderError) {
      process.stderr.write(`evosearch: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
}
