/**
 * rewards.json: which reward models score a bundle's samples and how to feed them. It sits beside
 * model_index.json (the bundle carries its rewards) or anywhere else (given to the loader), and paths
 * in it are relative to the manifest. Format, version 1:
 *
 *   { "version": 1,
 *     "rewards": [
 *       { "name": "imagereward",                 // unique; the run record's metric name
 *         "path": "rewards/imagereward.onnx",    // relative to this file
 *         "role": "guidance",                    // exactly one guidance reward (the search maximizes it);
 *                                                // the others are "held-out" metrics
 *         "inputs": { "pixel_values": "image", "input_ids": "prompt_tokens" },
 *                                                // graph input -> what to feed: "image" (decoded samples,
 *                                                // [B, 3, H, W] in [0, 1] then normalized), "prompt_tokens"
 *                                                // (the prompt's ids, [B, L]), "prompt_attention_mask"
 *         "output": "scores",                    // optional: the output to read, [B] or [B, 1]; default the only one
 *         "embedding": "image_embeds",           // optional: an output holding each image's embedding, [B, D]
 *                                                // (the benchmark's diversity measure)
 *         "image": { "mean": [..3], "std": [..3] },  // optional per-channel normalization: (x - mean) / std
 *         "tokenizer": "rewards/tokenizer" } ] } // optional: a tokenizer folder; default the bundle's
 *
 * The host does not resize images: a reward that wants 224x224 is exported with its resize inside the graph.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';
import { parseJsonText } from './json-text.js';
import type { ModelRoots } from './model-roots.js';

export const REWARD_ROLES = ['guidance', 'held-out'] as const;
export type RewardRole = (typeof REWARD_ROLES)[number];
export const REWARD_INPUT_SOURCES = ['image', 'prompt_tokens', 'prompt_attention_mask'] as const;
export type RewardInputSource = (typeof REWARD_INPUT_SOURCES)[number];

/** Rewards computed by the worker itself rather than an ONNX graph. */
export const BUILTIN_REWARDS = ['composition-checker'] as const;
export type BuiltinRewardName = (typeof BUILTIN_REWARDS)[number];

/** `{"name", "builtin": "composition-checker", "role"}`: the world's pixel-level checker (world/, WORLD.md). */
export interface BuiltinRewardSpec {
  readonly name: string;
  readonly builtin: BuiltinRewardName;
  readonly role: RewardRole;
}

export interface OnnxRewardSpec {
  readonly builtin?: undefined;
  readonly name: string;
  /** Absolute path of the ONNX file. */
  readonly file: string;
  readonly role: RewardRole;
  readonly inputs: Readonly<Record<string, RewardInputSource>>;
  readonly output: string | null;
  /** The output holding one embedding per image, when the graph has one. */
  readonly embedding: string | null;
  readonly mean: readonly [number, number, number] | null;
  readonly std: readonly [number, number, number] | null;
  /** Absolute path of a tokenizer folder, or null for the bundle's tokenizer. */
  readonly tokenizer: string | null;
}

/** A rewards.json that cannot be used: names the file and the entry field. */
export class RewardManifestError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'RewardManifestError';
  constructor(readonly file: string, readonly field: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${field}: ${detail}`, options);
  }
}

function triple(file: string, field: string, value: unknown, positive: boolean): readonly [number, number, number] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0))) {
    throw new RewardManifestError(file, field, `must be three ${positive ? 'positive ' : ''}numbers (one per RGB channel), got ${kindOf(value)}`);
  }
  return value as unknown as [number, number, number];
}

/** Reads rewards.json; the guidance reward comes first in the result (the executor's rewards[0]). */
export type RewardSpec = OnnxRewardSpec | BuiltinRewardSpec;

/**
 * What a value read from the manifest is, for an error: its kind, never its content (the manifest may
 * be named by a coordinator, and its errors go back there).
 */
function kindOf(value: unknown): string {
  if (value === null || value === undefined || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (typeof value === 'number') return Number.isInteger(value) ? 'another whole number' : 'a number';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  return `a ${typeof value === 'object' ? 'JSON object' : typeof value}`;
}

/**
 * Reads rewards.json; with `roots` (a gRPC worker's model roots), the manifest and every file and folder
 * it names must lie inside them (worker/bundles/model-roots.ts), checked before anything is read.
 */
export async function readRewardManifest(fileArg: string, roots?: ModelRoots): Promise<RewardSpec[]> {
  const file = roots === undefined ? resolve(fileArg) : roots.confine(fileArg, 'rewards manifest');
  const inRoots = (path: string, field: string) => (roots === undefined ? path : roots.confine(path, `${file}: ${field}`));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RewardManifestError(file, '(file)', code === 'ENOENT' ? 'is missing' : `cannot be read (${code ?? 'unreadable'})`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = parseJsonText(text);
  } catch (error) {
    throw new RewardManifestError(file, '(file)', `cannot be read as JSON: ${(error as Error).message}`, { cause: error });
  }
  const root = raw as { version?: unknown; rewards?: unknown };
  if (typeof raw !== 'object' || raw === null || root.version !== 1) throw new RewardManifestError(file, 'version', `must be 1, got ${typeof raw !== 'object' || raw === null ? `JSON that is not an object (${kindOf(raw)})` : kindOf(root.version)}`);
  if (!Array.isArray(root.rewards) || root.rewards.length === 0) throw new RewardManifestError(file, 'rewards', 'must list at least one reward model');
  const base = dirname(file);
  const specs: RewardSpec[] = [];
  for (const [i, entry] of (root.rewards as unknown[]).entries()) {
    const at = (field: string) => `rewards[${i}].${field}`;
    const e = (entry ?? {}) as Record<string, unknown>;
    if (typeof e.name !== 'string' || e.name === '') throw new RewardManifestError(file, at('name'), 'must be a non-empty string');
    const twin = specs.findIndex((s) => s.name === e.name);
    if (twin >= 0) throw new RewardManifestError(file, at('name'), `is the name of rewards[${twin}] too; names must be unique`);
    if (e.builtin !== undefined) {
      if (!(BUILTIN_REWARDS as readonly unknown[]).includes(e.builtin)) throw new RewardManifestError(file, at('builtin'), `must be one of ${BUILTIN_REWARDS.join(', ')}, got ${kindOf(e.builtin)}`);
      if (!(REWARD_ROLES as readonly unknown[]).includes(e.role)) throw new RewardManifestError(file, at('role'), `must be 'guidance' or 'held-out', got ${kindOf(e.role)}`);
      specs.push({ name: e.name, builtin: e.builtin as BuiltinRewardName, role: e.role as RewardRole });
      continue;
    }
    if (typeof e.path !== 'string') throw new RewardManifestError(file, at('path'), 'must be the ONNX file, relative to rewards.json (or name a builtin reward)');
    const path = inRoots(resolve(base, e.path), at('path'));
    const isFile = await stat(path).then((s) => s.isFile(), () => false);
    if (!isFile) throw new RewardManifestError(file, at('path'), `${path} is missing; export the reward model there or fix the path`);
    if (!(REWARD_ROLES as readonly unknown[]).includes(e.role)) throw new RewardManifestError(file, at('role'), `must be 'guidance' or 'held-out', got ${kindOf(e.role)}`);
    const inputs = e.inputs as Record<string, unknown> | undefined;
    if (typeof inputs !== 'object' || inputs === null || Object.keys(inputs).length === 0) throw new RewardManifestError(file, at('inputs'), 'must map each graph input to "image", "prompt_tokens" or "prompt_attention_mask"');
    for (const [input, source] of Object.entries(inputs)) {
      if (!(REWARD_INPUT_SOURCES as readonly unknown[]).includes(source)) throw new RewardManifestError(file, at(`inputs.${input}`), `must be one of ${REWARD_INPUT_SOURCES.join(', ')}, got ${kindOf(source)}`);
    }
    if (!Object.values(inputs).includes('image')) throw new RewardManifestError(file, at('inputs'), 'must feed the image to one input');
    if (e.output !== undefined && typeof e.output !== 'string') throw new RewardManifestError(file, at('output'), 'must be an output name');
    if (e.embedding !== undefined && typeof e.embedding !== 'string') throw new RewardManifestError(file, at('embedding'), 'must be an output name');
    const image = (e.image ?? {}) as Record<string, unknown>;
    if (e.tokenizer !== undefined && typeof e.tokenizer !== 'string') throw new RewardManifestError(file, at('tokenizer'), 'must be a tokenizer folder, relative to rewards.json');
    specs.push({
      name: e.name,
      file: path,
      role: e.role as RewardRole,
      inputs: inputs as Record<string, RewardInputSource>,
      output: typeof e.output === 'string' ? e.output : null,
      embedding: typeof e.embedding === 'string' ? e.embedding : null,
      mean: triple(file, at('image.mean'), image.mean, false),
      std: triple(file, at('image.std'), image.std, true),
      tokenizer: typeof e.tokenizer === 'string' ? inRoots(resolve(base, e.tokenizer), at('tokenizer')) : null,
    });
  }
  const guidance = specs.filter((s) => s.role === 'guidance');
  if (guidance.length !== 1) throw new RewardManifestError(file, 'rewards', `needs exactly one reward with role 'guidance' (the one the search maximizes), found ${guidance.length}`);
  return [...guidance, ...specs.filter((s) => s.role !== 'guidance')];
}
