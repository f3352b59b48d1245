/**
 * A GenerativeModel over a bundle folder (optimum's diffusers ONNX layout) for ONE prompt: the text
 * encoder runs once at load for the prompt and the negative prompt; the U-Net/transformer, the VAE
 * decoder and the reward models from rewards.json run per call. The sampler config comes from the
 * bundle's scheduler_config.json (bundleSamplerConfig in scheduler-config.ts), so schedule and
 * network always agree.
 */
import type { PredictionType } from '../../samplers/sampler.js';
import type { GenerativeModel } from '../models/generator.js';
import { ModelLayoutError } from '../runtime/model-layout-error.js';
import { OnnxSession, type CudaProviderOptions, type ProviderAttempt, type ProviderName } from '../runtime/onnx-session.js';
import { BundleError, findTokenizerFiles, readBundleManifest, type BundleManifest } from './bundle-manifest.js';
import { denoiserLayout, OnnxDenoiser } from './onnx-denoiser.js';
import { OnnxDecoder } from './onnx-decoder.js';
import { OnnxRewardModel } from './onnx-reward.js';
import { CompositionChecker } from '../rewards/composition-checker.js';
import type { RewardModel } from '../models/generator.js';
import type { BuiltinRewardName, RewardRole } from './reward-manifest.js';

/** A reward model and what it is for: guiding the search, or only measuring it. */
export type RoledReward = RewardModel & { readonly role: RewardRole };
import { OnnxTextEncoder } from './onnx-text-encoder.js';
import { readRewardManifest } from './reward-manifest.js';
import type { ModelRoots } from './model-roots.js';
import { SchedulerMappingError } from './scheduler-config.js';
import { loadTokenizer, type Tokenizer } from './tokenizer.js';

export interface OnnxModelOptions {
  readonly prompt: string;
  /** diffusers' negative_prompt; the empty prompt (the unconditional embedding) by default. */
  readonly negativePrompt?: string;
  /** Classifier-free guidance scale w; CFG runs when w > 1 (diffusers' rule). Default 7.5, diffusers' default. */
  readonly guidanceScale?: number;
  /** Execution providers in fallback order; default ['cpu']. */
  readonly providers?: readonly ProviderName[];
  /** The CUDA provider's options, when it is in the list. */
  readonly cuda?: CudaProviderOptions;
  /** A rewards.json to use instead of (or in the absence of) the bundle's own. */
  readonly rewards?: string;
  /** The only folders the rewards manifest and what it names may come from (a gRPC worker's); absent: any. */
  readonly modelRoots?: ModelRoots;
  /** Image size in pixels, for graphs whose latent height/width are symbolic (default: unet config sample_size). */
  readonly height?: number;
  readonly width?: number;
  /** Multiplier from StepTime.timestep to the graph's timestep input (default 1: diffusers' t in [0, 1000]). */
  readonly timestepScale?: number;
  /** Denoiser rows per graph call for dynamic-batch graphs (memory bound); default: all rows in one call. */
  readonly maxRows?: number;
  /** CPU threads per session (onnxruntime's default when absent). */
  readonly intraOpThreads?: number;
  /**
   * The rewards are scored on other workers (a `--role denoise` worker): their names and roles are
   * read from rewards.json, but no reward model is opened, and scoring here is an error.
   */
  readonly remoteRewards?: boolean;
}

/** Which provider opened each part, and why earlier providers failed. */
export interface SessionReport {
  readonly part: string;
  readonly file: string;
  readonly provider: ProviderName;
  readonly attempts: readonly ProviderAttempt[];
}

export const DEFAULT_GUIDANCE_SCALE = 7.5;

/** What the bundle's network predicts, from its scheduler config. */
export function bundlePrediction(manifest: BundleManifest): PredictionType {
  const config = manifest.scheduler.config;
  const className = String(config._class_name);
  if (className.startsWith('Flow')) return 'flow';
  const type = config.prediction_type ?? 'epsilon';
  if (type === 'epsilon' || type === 'v_prediction') return type;
  throw new SchedulerMappingError(manifest.scheduler.file, 'prediction_type', `'${String(type)}' is not supported (epsilon or v_prediction)`);
}

function configNumber(config: Readonly<Record<string, unknown>> | null, key: string): number | null {
  const v = config?.[key];
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
}

export class OnnxGenerativeModel implements GenerativeModel {
  private constructor(
    readonly id: string,
    readonly manifest: BundleManifest,
    readonly denoiser: OnnxDenoiser,
    readonly decoder: OnnxDecoder,
    readonly rewards: readonly RoledReward[],
    readonly tokenizer: Tokenizer,
    readonly sessions: readonly SessionReport[],
    private readonly opened: readonly OnnxSession[],
  ) {}

  /** Validates the folder, opens every session, embeds the prompts. */
  static async load(folder: string, options: OnnxModelOptions): Promise<OnnxGenerativeModel> {
    const manifest = await readBundleManifest(folder);
    const guidanceScale = options.guidanceScale ?? DEFAULT_GUIDANCE_SCALE;
    if (!Number.isFinite(guidanceScale) || guidanceScale < 0) throw new RangeError(`guidanceScale must be a finite number >= 0, got ${guidanceScale}`);
    const prediction = bundlePrediction(manifest);
    const rewardsFile = options.rewards ?? manifest.rewards;
    if (rewardsFile === null) {
      throw new BundleError(manifest.folder, [{ path: `${manifest.folder}/rewards.json`, problem: 'is missing and no rewards manifest was given', fix: 'add rewards.json (see worker/bundles/reward-manifest.ts) or pass the rewards option' }]);
    }
    const rewardSpecs = await readRewardManifest(rewardsFile, options.modelRoots);
    const sessionOptions = { ...(options.providers ? { providers: options.providers } : {}), ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}), ...(options.cuda !== undefined ? { cuda: options.cuda } : {}) };
    const opened: OnnxSession[] = [];
    const sessions: SessionReport[] = [];
    const track = (part: string, session: OnnxSession) => {
      opened.push(session);
      sessions.push({ part, file: session.file, provider: session.provider, attempts: session.attempts });
      return session;
    };
    try {
      const encoder = await OnnxTextEncoder.open(manifest.textEncoder.file, sessionOptions);
      track('text_encoder', encoder.session);
      const tokenizer = await loadTokenizer(manifest.tokenizer, encoder.tokenLength);
      const [uncond, cond] = await encoder.encode([tokenizer.encode(options.negativePrompt ?? ''), tokenizer.encode(options.prompt)]);
      // The text encoder is only needed for these two rows: free it now.
      opened.splice(opened.indexOf(encoder.session), 1);
      await encoder.session.release();

      const unet = track(manifest.denoiser.kind, await OnnxSession.open(manifest.denoiser.file, sessionOptions));
      const latentShape = resolveLatentShape(manifest, unet, options);
      const denoiser = new OnnxDenoiser({
        session: unet,
        prediction,
        cond: cond!,
        uncond: uncond!,
        guidanceScale,
        latentShape,
        timestepScale: options.timestepScale ?? 1,
        ...(options.maxRows !== undefined ? { maxRows: options.maxRows } : {}),
      });
      const vae = track('vae_decoder', await OnnxSession.open(manifest.vaeDecoder.file, sessionOptions));
      const decoder = await OnnxDecoder.open(vae, latentShape, manifest.vaeDecoder.scalingFactor, manifest.vaeDecoder.shiftFactor);

      const tokenizerCache = new Map<string, Promise<Tokenizer>>();
      const tokenizers = (length: number | null, tokenizerFolder: string | null): Promise<Tokenizer> => {
        const key = `${tokenizerFolder ?? ''}|${length ?? ''}`;
        let found = tokenizerCache.get(key);
        if (!found) {
          found = tokenizerFolder === null ? loadTokenizer(manifest.tokenizer, length ?? tokenizer.length) : findTokenizerFiles(tokenizerFolder).then((files) => loadTokenizer(files, length));
          tokenizerCache.set(key, found);
        }
        return found;
      };
      const rewards: RoledReward[] = [];
      for (const spec of rewardSpecs) {
        if (options.remoteRewards) {
          rewards.push({ name: spec.name, role: spec.role, score: () => Promise.reject(new Error(`reward '${spec.name}' is scored on the run's reward workers, not on this denoising worker`)) });
          continue;
        }
        if (spec.builtin !== undefined) {
          rewards.push(builtinReward(spec.builtin, spec.role, options.prompt, decoder.sampleShape, manifest.folder));
          continue;
        }
        const session = track(`reward:${spec.name}`, await OnnxSession.open(spec.file, sessionOptions));
        rewards.push(await OnnxRewardModel.open(session, spec, options.prompt, decoder.sampleShape, tokenizers));
      }
      return new OnnxGenerativeModel(`bundle:${manifest.folder}`, manifest, denoiser, decoder, rewards, tokenizer, sessions, opened);
    } catch (error) {
      await Promise.allSettled(opened.map((s) => s.release()));
      throw error;
    }
  }

  /** Which provider runs each part, and why the ones tried first did not (one line, for records and logs). */
  describe(): string {
    const lines = this.sessions.map((s) => {
      const failures = s.attempts.filter((a) => !a.ok).map((a) => `${a.provider} failed: ${lastSentence(a.error ?? '')}`);
      return { part: s.part, text: `${s.provider}${failures.length > 0 ? ` (${failures.join('; ')})` : ''}` };
    });
    const distinct = new Set(lines.map((l) => l.text));
    if (distinct.size === 1) return `all parts on ${lines[0]?.text ?? 'nothing'}`;
    return lines.map((l) => `${l.part}: ${l.text}`).join(', ');
  }

  /**
   * One line per provider that was asked for first and could not open a part, with why and what ran
   * instead ("cuda unavailable: …; running on cpu"): what a user who listed a fallback should be told.
   */
  fallbacks(): string[] {
    const lines = new Set<string>();
    for (const s of this.sessions) {
      for (const a of s.attempts) if (!a.ok) lines.add(`${a.provider} unavailable: ${a.error ?? 'no reason given'}; running on ${s.provider}`);
    }
    return [...lines];
  }

  async release(): Promise<void> {
    await Promise.allSettled(this.opened.map((s) => s.release()));
  }
}

/** [channels, height, width] of one latent: fixed graph dims win, then options, then the configs. */
function resolveLatentShape(manifest: BundleManifest, session: OnnxSession, options: OnnxModelOptions): number[] {
  const { latent } = denoiserLayout(session);
  if (latent.rank === 5) {
    // Video: [batch, frames, C, H, W]; the graph fixes everything but the batch.
    const dims = latent.dims.slice(1);
    if (!dims.every((d): d is number => typeof d === 'number')) throw new ModelLayoutError(session.file, `input '${latent.name}'`, 'fixed frames, channels, height and width for a video latent', `[${latent.dims.join(', ')}]`);
    return dims;
  }
  const dim = (axis: number) => (typeof latent.dims[axis] === 'number' ? (latent.dims[axis] as number) : null);
  const config = manifest.denoiser.config;
  const blocks = manifest.vaeDecoder.config?.block_out_channels;
  const vaeScale = Array.isArray(blocks) && blocks.length > 0 ? 2 ** (blocks.length - 1) : 8;
  const channels = dim(1) ?? configNumber(config, 'in_channels') ?? 4;
  const sampleSize = config?.sample_size;
  const configured = typeof sampleSize === 'number' ? [sampleSize, sampleSize] : Array.isArray(sampleSize) && sampleSize.length === 2 ? (sampleSize as number[]) : null;
  const pick = (axis: 2 | 3, pixels: number | undefined, what: string): number => {
    const requested = pixels === undefined ? null : pixels / vaeScale;
    if (requested !== null && !(Number.isInteger(requested) && requested > 0)) throw new RangeError(`${what} ${pixels} is not a positive multiple of the VAE scale ${vaeScale}`);
    const fixed = dim(axis);
    if (fixed !== null) {
      if (requested !== null && requested !== fixed) throw new ModelLayoutError(session.file, `input '${latent.name}'`, `latent ${what} ${requested} (${pixels} px requested)`, `a graph fixed at ${fixed} [${latent.dims.join(', ')}]`);
      return fixed;
    }
    const value = requested ?? configured?.[axis - 2] ?? null;
    if (value === null) throw new ModelLayoutError(session.file, `input '${latent.name}'`, `a fixed latent ${what}, a sample_size in ${manifest.denoiser.kind}/config.json, or the ${what} option`, `[${latent.dims.join(', ')}]`);
    return value;
  };
  return [channels, pick(2, options.height, 'height'), pick(3, options.width, 'width')];
}

/** A reward the worker computes itself; it must accept the decoder's samples. */
function builtinReward(name: BuiltinRewardName, role: RewardRole, prompt: string, sampleShape: readonly number[], folder: string): RoledReward {
  switch (name) {
    case 'composition-checker': {
      const checker = new CompositionChecker(prompt);
      if (checker.sampleShape.join('x') !== sampleShape.join('x')) {
        throw new RangeError(`${folder}: the composition checker measures samples of shape [${checker.sampleShape.join(', ')}] for this prompt, but the decoder makes [${sampleShape.join(', ')}]`);
      }
      return { name: checker.name, role, score: (samples, batch, out) => checker.score(samples, batch, out) };
    }
  }
}

/** Native errors carry source paths and assertions; their last sentence says what happened. */
function lastSentence(message: string): string {
  const parts = message.trim().split(/\.\s+/);
  const last = parts[parts.length - 1] ?? message;
  return last.length > 160 ? `${last.slice(0, 157)}...` : last;
}
