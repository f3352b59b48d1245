/**
 * What a model bundle folder holds, checked before any session opens. The layout is the one
 * `optimum-cli export onnx` writes for diffusers pipelines (shared/reference/onnx-layouts.md), plus an
 * optional rewards.json (reward-manifest.ts). Every problem found is reported at once, each with the path
 * and what to do, so a half-copied or wrongly exported bundle is fixed in one pass.
 */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';
import { JsonTextError, parseJsonText } from './json-text.js';

/** One thing wrong with a bundle: where, what, and how to fix it. */
export interface BundleProblem {
  readonly path: string;
  readonly problem: string;
  readonly fix: string;
}

/** A bundle folder that cannot be loaded; `problems` lists every issue found. */
export class BundleError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'BundleError';
  constructor(readonly folder: string, readonly problems: readonly BundleProblem[], options?: { cause?: unknown }) {
    super(`model bundle ${folder} is not usable:\n${problems.map((p) => `  - ${p.path}: ${p.problem}; ${p.fix}`).join('\n')}`, options);
  }
}

export type TokenizerFiles =
  | {
      /** CLIPTokenizer files as SD exports ship them (no tokenizer.json). */
      readonly kind: 'clip-bpe';
      readonly vocab: string;
      readonly merges: string;
      readonly specialTokensMap: string;
      readonly tokenizerConfig: string;
    }
  | {
      readonly kind: 'tokenizer-json';
      readonly tokenizerJson: string;
      readonly tokenizerConfig: string | null;
    };

export interface BundleManifest {
  readonly folder: string;
  /** model_index.json's _class_name (e.g. ORTStableDiffusionPipeline). */
  readonly pipelineClass: string;
  readonly scheduler: { readonly file: string; readonly config: Readonly<Record<string, unknown>> };
  readonly tokenizer: TokenizerFiles;
  readonly textEncoder: { readonly file: string; readonly config: Readonly<Record<string, unknown>> | null };
  readonly denoiser: {
    readonly kind: 'unet' | 'transformer';
    readonly file: string;
    /** model.onnx_data (or weights.pb) next to the graph, when present. */
    readonly externalData: string | null;
    readonly config: Readonly<Record<string, unknown>> | null;
  };
  readonly vaeDecoder: {
    readonly file: string;
    readonly config: Readonly<Record<string, unknown>> | null;
    /** Latents are divided by it before decoding (SD: 0.18215). */
    readonly scalingFactor: number;
    /** Added after scaling (FLUX/SD3 VAEs: shift_factor); 0 for SD. */
    readonly shiftFactor: number;
  };
  /** rewards.json beside model_index.json, when the bundle carries its reward models. */
  readonly rewards: string | null;
}

/** SD 1.x/2.x's VAE scaling when vae_decoder/config.json does not say (diffusers' AutoencoderKL default). */
export const DEFAULT_SCALING_FACTOR = 0.18215;

async function kind(path: string): Promise<'file' | 'dir' | null> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? 'dir' : s.isFile() ? 'file' : null;
  } catch {
    return null;
  }
}

/** Reads and validates the folder's layout. Throws BundleError listing every problem. */
export async function readBundleManifest(folderArg: string): Promise<BundleManifest> {
  const folder = resolve(folderArg);
  const problems: BundleProblem[] = [];
  const add = (path: string, problem: string, fix: string) => problems.push({ path: join(folder, path), problem, fix });
  if ((await kind(folder)) !== 'dir') throw new BundleError(folder, [{ path: folder, problem: 'is not a folder', fix: 'give the folder an optimum export wrote (it holds model_index.json)' }]);

  const readJson = async (path: string, required: boolean): Promise<Record<string, unknown> | null> => {
    const full = join(folder, path);
    if ((await kind(full)) !== 'file') {
      if (required) add(path, 'is missing', `copy it from the export (optimum-cli export onnx writes it)`);
      return null;
    }
    try {
      const value = parseJsonText(await readFile(full, 'utf8'));
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
      add(path, 'is not a JSON object', 're-export or restore the file');
    } catch (error) {
      add(path, error instanceof JsonTextError ? `is ${error.message}` : `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`, 're-export or restore the file');
    }
    return null;
  };
  const requireFile = async (path: string, fix: string): Promise<string> => {
    if ((await kind(join(folder, path))) !== 'file') add(path, 'is missing', fix);
    return join(folder, path);
  };

  const modelIndex = await readJson('model_index.json', true);
  const pipelineClass = typeof modelIndex?._class_name === 'string' ? modelIndex._class_name : '';
  if (modelIndex && pipelineClass === '') add('model_index.json', 'has no _class_name', 'export with optimum, which names the pipeline class');

  const schedulerConfig = await readJson('scheduler/scheduler_config.json', true);
  if (schedulerConfig && typeof schedulerConfig._class_name !== 'string') add('scheduler/scheduler_config.json', 'has no _class_name', 'restore the scheduler config the model was published with');

  // Tokenizer: tokenizer.json, or the four CLIPTokenizer files.
  let tokenizer: TokenizerFiles | null = null;
  const tokenizerJson = join(folder, 'tokenizer/tokenizer.json');
  const clipFiles = ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json'];
  const presentClip = await Promise.all(clipFiles.map(async (f) => (await kind(join(folder, 'tokenizer', f))) === 'file'));
  if ((await kind(tokenizerJson)) === 'file') {
    tokenizer = { kind: 'tokenizer-json', tokenizerJson, tokenizerConfig: presentClip[3] ? join(folder, 'tokenizer/tokenizer_config.json') : null };
  } else if (presentClip.every(Boolean)) {
    const [vocab, merges, specialTokensMap, tokenizerConfig] = clipFiles.map((f) => join(folder, 'tokenizer', f)) as [string, string, string, string];
    tokenizer = { kind: 'clip-bpe', vocab, merges, specialTokensMap, tokenizerConfig };
  } else if (presentClip.some(Boolean)) {
    clipFiles.forEach((f, i) => {
      if (!presentClip[i]) add(`tokenizer/${f}`, 'is missing (the CLIP tokenizer needs vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json)', 'copy the whole tokenizer folder from the export');
    });
  } else {
    add('tokenizer/', 'has no tokenizer (neither tokenizer.json nor vocab.json + merges.txt)', 'copy the tokenizer folder from the export');
  }

  const textEncoderFile = await requireFile('text_encoder/model.onnx', 'export the text encoder (optimum-cli export onnx writes text_encoder/model.onnx)');
  const textEncoderConfig = await readJson('text_encoder/config.json', false);

  // Denoiser: a U-Net (SD) or a transformer (SD3/FLUX-style), never both.
  const hasUnet = (await kind(join(folder, 'unet/model.onnx'))) === 'file';
  const hasTransformer = (await kind(join(folder, 'transformer/model.onnx'))) === 'file';
  let denoiserKind: 'unet' | 'transformer' = 'unet';
  if (hasUnet && hasTransformer) add('unet/ and transformer/', 'both hold a model.onnx', 'keep the one the pipeline uses');
  else if (hasTransformer) denoiserKind = 'transformer';
  else if (!hasUnet) add('unet/model.onnx', 'is missing (and there is no transformer/model.onnx)', 'export the denoiser; its weights go to model.onnx_data beside it');
  const listed = modelIndex?.[denoiserKind === 'unet' ? 'transformer' : 'unet'];
  if (Array.isArray(listed) && listed[0] !== null && (hasUnet || hasTransformer)) {
    add('model_index.json', `lists '${denoiserKind === 'unet' ? 'transformer' : 'unet'}' but the folder holds ${denoiserKind}/model.onnx`, 'use the model_index.json that came with this export');
  }
  let externalData: string | null = null;
  for (const name of ['model.onnx_data', 'weights.pb']) {
    if ((await kind(join(folder, denoiserKind, name))) === 'file') externalData = join(folder, denoiserKind, name);
  }
  const denoiserConfig = await readJson(`${denoiserKind}/config.json`, false);

  const vaeFile = await requireFile('vae_decoder/model.onnx', 'export the VAE decoder (optimum writes vae_decoder/model.onnx)');
  const vaeConfig = await readJson('vae_decoder/config.json', false);
  let scalingFactor = DEFAULT_SCALING_FACTOR;
  let shiftFactor = 0;
  if (vaeConfig) {
    const sf = vaeConfig.scaling_factor;
    if (sf !== undefined && sf !== null) {
      if (typeof sf === 'number' && Number.isFinite(sf) && sf > 0) scalingFactor = sf;
      else add('vae_decoder/config.json', `scaling_factor ${JSON.stringify(sf)} is not a positive number`, 'restore the VAE config (SD: 0.18215)');
    }
    const sh = vaeConfig.shift_factor;
    if (sh !== undefined && sh !== null) {
      if (typeof sh === 'number' && Number.isFinite(sh)) shiftFactor = sh;
      else add('vae_decoder/config.json', `shift_factor ${JSON.stringify(sh)} is not a number`, 'restore the VAE config');
    }
  }

  const rewardsPath = join(folder, 'rewards.json');
  const rewards = (await kind(rewardsPath)) === 'file' ? rewardsPath : null;

  if (problems.length > 0) throw new BundleError(folder, problems);
  return {
    folder,
    pipelineClass,
    scheduler: { file: join(folder, 'scheduler/scheduler_config.json'), config: schedulerConfig! },
    tokenizer: tokenizer!,
    textEncoder: { file: textEncoderFile, config: textEncoderConfig },
    denoiser: { kind: denoiserKind, file: join(folder, denoiserKind, 'model.onnx'), externalData, config: denoiserConfig },
    vaeDecoder: { file: vaeFile, config: vaeConfig, scalingFactor, shiftFactor },
    rewards,
  };
}

/** The tokenizer files in `folder` (a reward's own tokenizer), in the same forms a bundle may use. */
export async function findTokenizerFiles(folderArg: string): Promise<TokenizerFiles> {
  const folder = resolve(folderArg);
  const at = (f: string) => join(folder, f);
  const config = (await kind(at('tokenizer_config.json'))) === 'file' ? at('tokenizer_config.json') : null;
  if ((await kind(at('tokenizer.json'))) === 'file') return { kind: 'tokenizer-json', tokenizerJson: at('tokenizer.json'), tokenizerConfig: config };
  const missing: BundleProblem[] = [];
  for (const f of ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json']) {
    if ((await kind(at(f))) !== 'file') missing.push({ path: at(f), problem: 'is missing (and there is no tokenizer.json)', fix: 'copy the tokenizer folder the reward model was trained with' });
  }
  if (missing.length > 0) throw new BundleError(folder, missing);
  return { kind: 'clip-bpe', vocab: at('vocab.json'), merges: at('merges.txt'), specialTokensMap: at('special_tokens_map.json'), tokenizerConfig: at('tokenizer_config.json') };
}
