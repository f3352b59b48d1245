import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ConfigError, mergeRunConfig, parseRunConfig, type RunPlan } from '../config/resolve-run-config.js';
import { planRun } from '../config/plan-run.js';
import { LOG_LEVELS, type RunConfigInput } from '../config/run-config-schema.js';
import { METHOD_NAMES } from '../search/machine.js';
import { PRESET_NAMES, PRESETS } from '../config/presets.js';
import { addClusterKeyOption, addNatsAccessOptions } from './cluster-access-options.js';

/**
 * The run flags, shared by `run` and `plan`: each maps onto a field of the config file, so a file and
 * flags describe the same thing and are validated by the same schema.
 */
const integer = (flag: string) => (value: string): number => {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} takes an integer, got '${value}'`);
  return n;
};
const decimal = (flag: string) => (value: string): number => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} takes a number, got '${value}'`);
  return n;
};
const integerList = (flag: string) => (value: string): number[] => value.split(',').map((part) => integer(flag)(part.trim()));

/** Flags map onto the config file's fields; each flag says which field it sets. */
interface FlagSpec {
  readonly flags: string;
  readonly help: string;
  readonly path: readonly string[];
  readonly parse?: (value: string) => unknown;
  readonly choices?: readonly string[];
}

const FLAGS: readonly FlagSpec[] = [
  { flags: '--model <spec>', help: 'model to search over: analytic:gmm[?dimension=8&modes=4&rareWeight=0.05&modeStd=0.25&separation=3&seed=0] (default analytic:gmm)', path: ['model'] },
  { flags: '--method <name>', help: 'search method (default evosearch)', path: ['method'], choices: METHOD_NAMES },
  { flags: '--preset <name>', help: `authors' defaults for a model family: ${PRESET_NAMES.map((p) => `${p} (${PRESETS[p].description})`).join('; ')} (default sd21)`, path: ['preset'], choices: PRESET_NAMES },
  { flags: '--seed <int>', help: 'run seed: every random draw is addressed by it (default 0)', path: ['seed'], parse: integer('--seed') },
  { flags: '--budget-nfe <int>', help: "NFE budget every method is planned to, within one trajectory (default: what the preset's EvoSearch schedule spends)", path: ['budgetNfe'], parse: integer('--budget-nfe') },
  { flags: '--sampler <kind>', help: "sampler (default: the preset's)", path: ['sampler', 'kind'], choices: ['ddim', 'ddpm', 'flow-euler', 'flow-sde-dpmpp'] },
  { flags: '--steps <int>', help: 'sampler steps N (default 50; the preset schedules are rescaled)', path: ['sampler', 'steps'], parse: integer('--steps') },
  { flags: '--eta <x>', help: 'DDIM eta in [0, 1] (EvoSearch needs a stochastic sampler: eta > 0)', path: ['sampler', 'eta'], parse: decimal('--eta') },
  { flags: '--shift <x>', help: 'flow-matching timestep shift', path: ['sampler', 'shift'], parse: decimal('--shift') },
  { flags: '--prediction-type <type>', help: 'what a DDIM/DDPM model predicts', path: ['sampler', 'prediction_type'], choices: ['epsilon', 'v_prediction'] },
  { flags: '--evolution-schedule <list>', help: 'EvoSearch: comma-separated step indices of the generations, e.g. 0,20,30,40', path: ['evosearch', 'evolutionSchedule'], parse: integerList('--evolution-schedule') },
  { flags: '--population-schedule <list>', help: 'EvoSearch: comma-separated population per generation, then the final one, e.g. 42,26,26,26,30 (scaled to --budget-nfe when both are given only if they agree)', path: ['evosearch', 'populationSchedule'], parse: integerList('--population-schedule') },
  { flags: '--elites <int>', help: 'EvoSearch: candidates kept unmutated per generation', path: ['evosearch', 'elites'], parse: integer('--elites') },
  { flags: '--mutation-rate <x>', help: 'EvoSearch: beta of the x_T mutation, in (0, 1) (default 0.2)', path: ['evosearch', 'mutationRate'], parse: decimal('--mutation-rate') },
  { flags: '--tournament-fraction <x>', help: 'EvoSearch: tournament size as a fraction of the candidates, in (0, 1] (default 0.9)', path: ['evosearch', 'tournamentFraction'], parse: decimal('--tournament-fraction') },
  { flags: '--tournament-size <int>', help: 'EvoSearch: fixed tournament size (overrides the fraction)', path: ['evosearch', 'tournamentSize'], parse: integer('--tournament-size') },
  { flags: '--no-archive', help: 'EvoSearch: do not keep the states rollouts pass as candidates', path: ['evosearch', 'archive'] },
  { flags: '--selection <kind>', help: "EvoSearch: parent selection, 'tournament' (the paper's, default) or 'sharing' (tournaments on fitness shared over the guidance reward's image embeddings; keeps the population diverse)", path: ['evosearch', 'selection'], choices: ['tournament', 'sharing'] },
  { flags: '--sharing-radius <x>', help: 'EvoSearch with --selection sharing: radius sigma_share, a Euclidean distance between unit embeddings in (0, 2] (default 0.4)', path: ['evosearch', 'sharingRadius'], parse: decimal('--sharing-radius') },
  { flags: '--sharing-alpha <x>', help: 'EvoSearch with --selection sharing: alpha of the kernel 1 - (d/sigma)^alpha, > 0 (default 1)', path: ['evosearch', 'sharingAlpha'], parse: decimal('--sharing-alpha') },
  { flags: '--samples <int>', help: 'Best-of-N: number of samples (default: the budget divided by the steps)', path: ['bestOfN', 'n'], parse: integer('--samples') },
  { flags: '--particles <int>', help: 'particles: number of particles k (default: the budget divided by the steps)', path: ['particles', 'particles'], parse: integer('--particles') },
  { flags: '--lambda <x>', help: 'particles: weight sharpness lambda (default 10)', path: ['particles', 'lambda'], parse: decimal('--lambda') },
  { flags: '--potential <name>', help: 'particles: potential (default max)', path: ['particles', 'potential'], choices: ['max', 'add', 'diff', 'rt'] },
  { flags: '--resample-every <int>', help: "particles: resampling interval f in steps (default round(20 N / 50), at least 1: the reference launch's every 20 of 50 steps, rescaled with the step count N)", path: ['particles', 'resampling', 'interval'], parse: integer('--resample-every') },
  { flags: '--resample-start <int>', help: 'particles: first resampling index a (default 0)', path: ['particles', 'resampling', 'start'], parse: integer('--resample-start') },
  { flags: '--resample-end <int>', help: 'particles: last resampling index b (default N)', path: ['particles', 'resampling', 'end'], parse: integer('--resample-end') },
  { flags: '--adaptive-resampling', help: 'particles: resample only when ESS < k/2', path: ['particles', 'adaptive'] },
  { flags: '--particle-fitness <kind>', help: 'particles: score by the one-step x0 prediction or a full rollout (default x0-prediction)', path: ['particles', 'fitness'], choices: ['x0-prediction', 'rollout'] },
  { flags: '--prompt <text>', help: 'text prompt for a text-to-image/video bundle (the analytic model takes none)', path: ['prompt'] },
  { flags: '--negative-prompt <text>', help: 'negative prompt for classifier-free guidance (default empty)', path: ['negativePrompt'] },
  { flags: '--rewards <manifest>', help: "rewards.json to score with instead of the bundle's own (one guidance reward, any held-out ones)", path: ['rewards'] },
  { flags: '--providers <list>', help: 'ONNX execution providers to try in order, comma-separated: cpu, webgpu, cuda, tensorrt (default cpu); the one that opened is reported', path: ['providers'], parse: (value: string) => value.split(',').map((p) => p.trim()) },
  { flags: '--cuda-device <int>', help: 'CUDA provider: the GPU, as an index among those this process sees (after CUDA_VISIBLE_DEVICES; default 0)', path: ['cuda', 'deviceId'], parse: integer('--cuda-device') },
  { flags: '--cuda-tf32', help: 'CUDA provider: TF32 tensor-core math for float32 models (the default)', path: ['cuda', 'tf32'] },
  { flags: '--no-cuda-tf32', help: 'CUDA provider: exact float32 math (NVIDIA_TF32_OVERRIDE=0 for the process)', path: ['cuda', 'tf32'] },
  { flags: '--guidance-scale <x>', help: "classifier-free guidance scale (default: the preset's; the analytic model has no text and ignores it)", path: ['guidanceScale'], parse: decimal('--guidance-scale') },
  { flags: '--workers <int>', help: 'worker threads (default 2, or 1 on a single core)', path: ['workers'], parse: integer('--workers') },
  { flags: '--cluster <nats-url>', help: "run on the cluster's live workers (registered in NATS by `evosearch worker --nats`) that serve this run's model build; events go to evosearch.events.run.<id>.*", path: ['cluster'] },
  { flags: '--workers-at <addresses>', help: 'run on gRPC workers (comma-separated host:port, each started with `evosearch worker --model <same model>`) instead of local threads', path: ['workersAt'], parse: (value: string) => value.split(',').map((a) => a.trim()).filter((a) => a !== '') },
  { flags: '--call-rows <rows|off>', help: "every model call runs exactly this many rows, cut or padded with copies of the last: one shape per run on a GPU, where each new batch size costs a slow first call and changes the floats; 'off': calls as the work comes (default 32, at most --batch-size, where the denoiser runs on CUDA; off elsewhere)", path: ['callRows'], parse: (value: string) => (value.trim() === 'off' ? 'off' : integer('--call-rows')(value)) },
  { flags: '--batch-size <int>', help: 'latents per model call (default 256)', path: ['batchSize'], parse: integer('--batch-size') },
  { flags: '--out <dir>', help: 'run folder (default runs/<time>-<method>-seed<seed>)', path: ['out'] },
  { flags: '--log-level <level>', help: 'log level of run.log and, when set, of the terminal (default info to run.log, warn to the terminal)', path: ['logLevel'], choices: LOG_LEVELS },
  { flags: '--no-progress', help: 'no progress bar', path: ['progress'] },
  { flags: '--snapshots', help: 'workers snapshot their states after every round, so a resume loads them instead of recomputing them (default for local threads, which keep them in the run folder; gRPC workers keep them in their own --state-dir, under the run id)', path: ['snapshots'] },
  { flags: '--no-snapshots', help: 'no state snapshots: a resume recomputes the states from their recipes', path: ['snapshots'] },
];

function optionKey(spec: FlagSpec): string {
  return new Option(spec.flags).attributeName();
}

/** Adds --config and every run flag to a command, and how it reaches a --cluster (credentials, TLS, the cluster key). */
export function addRunOptions(command: Command): Command {
  command.option('--config <file>', 'YAML or JSON config file; flags override it (fields: see config/run-config-schema.ts)');
  for (const spec of FLAGS) {
    const option = new Option(spec.flags, spec.help);
    if (spec.choices) option.choices(spec.choices);
    if (spec.parse) option.argParser(spec.parse);
    command.addOption(option);
  }
  return addClusterKeyOption(addNatsAccessOptions(command, 'cluster'));
}

/** Only flags the user typed become config (commander's defaults for --no-x would override the file). */
function flagsLayer(cmd: Command): RunConfigInput {
  const layer: Record<string, unknown> = {};
  for (const spec of FLAGS) {
    const key = optionKey(spec);
    if (cmd.getOptionValueSource(key) !== 'cli') continue;
    let node = layer;
    spec.path.slice(0, -1).forEach((part) => {
      node[part] ??= {};
      node = node[part] as Record<string, unknown>;
    });
    node[spec.path[spec.path.length - 1]!] = cmd.getOptionValue(key);
  }
  return parseRunConfig(layer, 'command-line flags');
}

async function loadConfigFile(path: string): Promise<RunConfigInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError('--config', `cannot read '${path}': ${(error as Error).message}`, 'command-line flags', { cause: error });
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new ConfigError('(file)', `not valid YAML or JSON: ${(error as Error).message}`, `config file ${path}`, { cause: error });
  }
  return parseRunConfig(data, `config file ${path}`);
}

/** The plan a command's --config and flags describe: file first, flags on top, then resolved. */
export async function planFromOptions(cmd: Command, override: RunConfigInput = {}): Promise<{ plan: RunPlan; flags: RunConfigInput; input: RunConfigInput }> {
  const configPath = cmd.getOptionValue('config') as string | undefined;
  const fileLayer = configPath === undefined ? {} : await loadConfigFile(configPath);
  const flags = mergeRunConfig(flagsLayer(cmd), override);
  const input = mergeRunConfig(fileLayer, flags);
  const plan = await planRun(input, configPath === undefined ? 'command-line flags' : `config (${configPath} + flags)`);
  return { plan, flags, input };
}
