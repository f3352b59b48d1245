import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { SamplerConfig } from '../samplers/index.js';
import { readBundleManifest } from '../worker/bundles/bundle-manifest.js';
import { samplerConfigFromScheduler } from '../worker/bundles/scheduler-config.js';
import { bundlePath } from '../worker/models/load-model.js';
import { BUNDLED_MODELS } from '../worker/bundles/model-roots.js';
import { checkPromptForModel, worldOutputOf, type WorldIndexFields, type WorldOutput } from '../world/model-prompts.js';
import { parsePrompt, PromptError, type ParsedPrompt } from '../world/prompt-grammar.js';
import type { PresetName } from './presets.js';
import { resolveRunConfig } from './resolve-run-config.js';
import { ConfigError, type MethodName, type ModelDefaults, type RunPlan } from './run-plan.js';
import { METHOD_NAMES } from '../search/machine.js';
import type { RunConfigInput } from './run-config-schema.js';

/**
 * Resolves a run configuration, reading what a model bundle says about itself first: its scheduler
 * config fixes the noise schedule and prediction type (a mismatch would be a silent wrong answer), run
 * with the stochastic sampler EvoSearch needs (DDIM eta = 1 for VP models, SDE DPM-Solver++ for flow
 * models); its family picks the preset (sd -> sd21, flux -> flux, video -> wan).
 */
export async function planRun(input: RunConfigInput, source: string): Promise<RunPlan> {
  const folder = bundlePath(input.model ?? 'analytic:gmm');
  if (folder === null) {
    checkLocalModelName(input, source);
    return resolveRunConfig(input, source);
  }
  let defaults: ModelDefaults;
  try {
    defaults = await bundleDefaults(folder, input.sampler?.steps);
  } catch (error) {
    throw new ConfigError('model', error instanceof Error ? error.message : String(error), source, { cause: error });
  }
  if (input.prompt === undefined) throw new ConfigError('prompt', `the model bundle '${folder}' is text-conditioned: give a prompt (--prompt "a red circle")`, source);
  if (defaults.world) {
    // The bundle speaks the procedural world's grammar: a prompt it cannot parse would only make noise.
    let parsed: ParsedPrompt;
    try {
      parsed = parsePrompt(input.prompt);
    } catch (error) {
      if (error instanceof PromptError) throw new ConfigError('prompt', `${error.message} (the model '${folder}' was trained on models/world/WORLD.md's grammar)`, source, { cause: error });
      throw error;
    }
    // A prompt of the grammar the model still cannot make (motion for an image model, or the reverse).
    checkPromptForModel(parsed, input.model ?? folder, defaults.world);
  }
  return resolveRunConfig(input, source, defaults);
}

/**
 * A bare name (`--model tiny-sd`) that is neither an analytic spec nor a folder here would only fail
 * once the workers open it, after the run has started; on this machine's own workers it cannot load,
 * so it is refused now, with the shipped bundles' paths to copy. A run on other machines' workers
 * (`--cluster`, `--workers-at`) is left to them: the name may be a folder there.
 */
function checkLocalModelName(input: RunConfigInput, source: string): void {
  const model = input.model;
  if (model === undefined || model.startsWith('analytic:') || input.cluster !== undefined || input.workersAt !== undefined) return;
  const shipped = existsSync(BUNDLED_MODELS) ? readdirSync(BUNDLED_MODELS).filter((name) => existsSync(join(BUNDLED_MODELS, name, 'model_index.json'))).sort() : [];
  const match = shipped.includes(model) ? ` The shipped bundle of that name is ${join(BUNDLED_MODELS, model)}: --model ${join(BUNDLED_MODELS, model)}.` : '';
  const list = shipped.length > 0 ? ` Shipped bundles, in ${BUNDLED_MODELS}: ${shipped.join(', ')}.` : '';
  throw new ConfigError('model', `'${model}' is neither \`analytic:gmm[?key=value&...]\` nor a bundle folder: there is no folder ${resolve(model)}.${match || list} Give a bundle's path (or bundle:<path>).`, source);
}

async function bundleDefaults(folder: string, steps: number | undefined): Promise<ModelDefaults> {
  const manifest = await readBundleManifest(folder);
  const indexFile = join(folder, 'model_index.json');
  const index = JSON.parse(await readFile(indexFile, 'utf8')) as { _evosearch?: WorldIndexFields & { family?: string; default_steps?: number; default_guidance_scale?: number; default_method?: unknown; default_budget_nfe?: unknown } };
  const own = index._evosearch ?? {};
  const world = worldOutputOf(own);
  if (own.default_method !== undefined && !(METHOD_NAMES as readonly unknown[]).includes(own.default_method)) {
    throw new Error(`${indexFile}: _evosearch.default_method must be one of ${METHOD_NAMES.join(', ')}, got ${JSON.stringify(own.default_method)}`);
  }
  if (own.default_budget_nfe !== undefined && !(Number.isInteger(own.default_budget_nfe) && (own.default_budget_nfe as number) > 0)) {
    throw new Error(`${indexFile}: _evosearch.default_budget_nfe must be a positive whole number of NFEs, got ${JSON.stringify(own.default_budget_nfe)}`);
  }
  const className = String(manifest.scheduler.config._class_name ?? '');
  const flow = className.startsWith('Flow');
  const preset: PresetName = own.family === 'video' ? 'wan' : flow ? 'flux' : 'sd21';
  // The steps the bundle was evaluated with (its README's quality figures), unless the user says.
  const chosenSteps = steps ?? own.default_steps ?? 50;
  const sampler = samplerConfigFromScheduler(manifest.scheduler.config, manifest.scheduler.file, flow ? { steps: chosenSteps, kind: 'flow-sde-dpmpp' } : { steps: chosenSteps, kind: 'ddim', eta: 1 });
  return {
    sampler,
    preset,
    ...(own.default_guidance_scale !== undefined ? { guidanceScale: own.default_guidance_scale } : {}),
    ...(own.default_method !== undefined ? { method: own.default_method as MethodName } : {}),
    ...(own.default_budget_nfe !== undefined ? { budgetNfe: own.default_budget_nfe as number } : {}),
    ...(world !== null ? { world } : {}),
  };
}
