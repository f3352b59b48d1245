/**
 * The ONNX model runtime's parts: float16 conversion, token and timestep tensors, aligned views, the
 * tokenizers (CLIP BPE on the fixture vocabulary, hand-computed; tokenizer.json WordLevel and BPE),
 * scheduler-config mapping, bundle and reward-manifest validation, and provider fallback.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveSamplerConfig } from '../samplers/index.js';
import { BpeModel } from '../worker/bundles/bpe.js';
import { BundleError, readBundleManifest } from '../worker/bundles/bundle-manifest.js';
import { HfJsonTokenizer } from '../worker/bundles/hf-tokenizer-json.js';
import { OnnxGenerativeModel } from '../worker/bundles/onnx-generative-model.js';
import { readRewardManifest, RewardManifestError } from '../worker/bundles/reward-manifest.js';
import { samplerConfigFromScheduler, SchedulerMappingError } from '../worker/bundles/scheduler-config.js';
import { ClipBpeTokenizer, clipCleanText, loadTokenizer } from '../worker/bundles/tokenizer.js';
import { ModelLayoutError } from '../worker/runtime/model-layout-error.js';
import { OnnxSession, ProviderUnavailableError } from '../worker/runtime/onnx-session.js';
import {
  alignedView,
  float16ToFloat32,
  float32ToFloat16,
  fromFloat16Bits,
  readFloats,
  timestepTensor,
  toFloat16Bits,
  tokenTensor,
} from '../worker/runtime/tensors.js';
import { bundlePath, loadModel, ModelLoadError } from '../worker/models/load-model.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
const SD21 = fixture('sd21-layout');
const REWARDS = fixture('tiny-rewards/rewards.json');

async function copyFixture(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bundle-'));
  await cp(SD21, dir, { recursive: true });
  return dir;
}

describe('float16 conversion', () => {
  it('rounds to nearest even and handles the edges', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [65504, 0x7bff], // largest finite half
      [65519, 0x7bff], // rounds down
      [65520, 0x7c00], // rounds up to Inf
      [1e9, 0x7c00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // exactly half of it: tie to even (0)
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 subnormal steps: tie to even (2)
      [2 ** -14, 0x0400], // smallest normal
      [1 + 2 ** -11, 0x3c00], // tie between 1 and the next half: even (1)
      [1 + 3 * 2 ** -11, 0x3c02], // tie: even (up)
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    ];
    for (const [value, bits] of cases) assert.equal(toFloat16Bits(value), bits, `${value}`);
    const nan = toFloat16Bits(Number.NaN);
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.notEqual(nan & 0x3ff, 0);
    assert.ok(Number.isNaN(fromFloat16Bits(nan)));
    assert.equal(fromFloat16Bits(0x7c00), Infinity);
    assert.equal(fromFloat16Bits(0xfc00), -Infinity);
    assert.equal(fromFloat16Bits(0x0001), 2 ** -24);
    assert.ok(Object.is(fromFloat16Bits(0x8000), -0));
  });

  it('every half value round-trips through float32', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const floats = float16ToFloat32(all);
    const back = float32ToFloat16(floats);
    for (let h = 0; h < 65536; h++) {
      const isNan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNan) assert.ok(Number.isNaN(floats[h]!));
      else assert.equal(back[h], h, `0x${h.toString(16)}`);
      assert.ok(isNan || floats[h] === fromFloat16Bits(h));
    }
  });

  it('float32 -> float16 -> float32 stays within half precision', () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
    const back = float16ToFloat32(float32ToFloat16(values));
    values.forEach((v, i) => assert.ok(Math.abs(back[i]! - v) <= Math.max(Math.abs(v) * 2 ** -11, 2 ** -25), `${v} -> ${back[i]}`));
  });
});

describe('tensors', () => {
  it('token ids as int64 (BigInt64Array) or int32', () => {
    const ids = [49406, 320, 49407];
    const t64 = tokenTensor('int64', ids, [1, 3]);
    assert.equal(t64.type, 'int64');
    assert.deepEqual(Array.from(t64.data as BigInt64Array), [49406n, 320n, 49407n]);
    const t32 = tokenTensor('int32', ids, [1, 3]);
    assert.ok(t32.data instanceof Int32Array);
    assert.deepEqual(t32.dims, [1, 3]);
  });

  it('timestep rank 0 or rank 1 of length batch, float or integer, float16 as bits', () => {
    const r0 = timestepTensor({ type: 'float32', rank: 0 }, 981, 4);
    assert.deepEqual(r0.dims, []);
    assert.deepEqual(Array.from(r0.data as Float32Array), [981]);
    const r1 = timestepTensor({ type: 'int64', rank: 1 }, 980.6, 3);
    assert.deepEqual(r1.dims, [3]);
    assert.deepEqual(Array.from(r1.data as BigInt64Array), [981n, 981n, 981n]);
    const h = timestepTensor({ type: 'float16', rank: 1 }, 500, 2);
    assert.deepEqual(Array.from(readFloats(h, 't')), [500, 500]);
  });

  it('views bytes at an odd offset through an aligned copy', () => {
    const values = new Float32Array([1.5, -2, 3.25]);
    const bytes = new Uint8Array(values.byteLength + 1);
    bytes.set(new Uint8Array(values.buffer), 1);
    const view = alignedView(bytes.subarray(1), Float32Array);
    assert.deepEqual(Array.from(view), [1.5, -2, 3.25]);
    const aligned = alignedView(new Uint8Array(values.buffer), Float32Array);
    assert.equal(aligned.buffer, values.buffer, 'no copy when already aligned');
    assert.throws(() => alignedView(new Uint8Array(5), Float32Array), /whole number/);
  });
});

describe('tokenizers', () => {
  const clip = async () => (await loadTokenizer((await readBundleManifest(SD21)).tokenizer, 77)) as ClipBpeTokenizer;

  it('CLIP BPE merges by rank, hand-computed on the fixture merges', async () => {
    const vocab = JSON.parse(await readFile(join(SD21, 'tokenizer/vocab.json'), 'utf8')) as Record<string, number>;
    const merges = (await readFile(join(SD21, 'tokenizer/merges.txt'), 'utf8')).split('\n').slice(1).filter(Boolean).map((l) => l.split(' ') as [string, string]);
    const bpe = new BpeModel('merges.txt', new Map(Object.entries(vocab)), merges, { endOfWordSuffix: '</w>' });
    // p h o t o</w>: "p h" (rank 12) first, then "o t" (13), "ph ot" (14), "phot o</w>" (15).
    assert.deepEqual(bpe.pieces('photo'), ['photo</w>']);
    // "c a" (17) loses to "a t</w>" (7); then "c at</w>" (11).
    assert.deepEqual(bpe.pieces('cat'), ['cat</w>']);
    // "o u" (43) beats "m o" (45), so "mo un" never applies: the word stays in pieces.
    assert.deepEqual(bpe.pieces('mountain'), ['m', 'ou', 'n', 't', 'ain</w>']);
    // All occurrences of the best pair merge at once: both "i n" (1), then "in g</w>" (6), ...
    assert.deepEqual(bpe.pieces('painting'), ['painting</w>']);
    assert.deepEqual(bpe.pieces('a'), ['a</w>']);
  });

  it('CLIP tokenizer: cleanup, regex, byte level, start/end tokens, pad to 77 with "!" (SD 2.x)', async () => {
    const tok = await clip();
    const words = (text: string) => tok.tokens(text).map((id) => tok.token(id));
    assert.equal(tok.length, 77);
    assert.equal(tok.padId, 0);
    assert.equal(tok.token(0), '!');
    assert.deepEqual(words('a photo of a cat'), ['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>']);
    assert.deepEqual(words('  A   Red\tCar!  '), ['a</w>', 'red</w>', 'car</w>', '!</w>']);
    assert.deepEqual(words("the dog's painting"), ['the</w>', 'dog</w>', "'s</w>", 'painting</w>']);
    assert.deepEqual(words('hello world 2024'), ['hello</w>', 'world</w>', '2</w>', '0</w>', '2</w>', '4</w>']);
    // é is two UTF-8 bytes, spelt with the byte-level characters Ã and ©.
    assert.deepEqual(words('café'), ['ca', 'f', 'Ã', '©</w>']);
    const ids = tok.encode('a photo of a cat');
    assert.equal(ids.length, 77);
    assert.equal(ids[0], tok.bosId);
    assert.equal(ids[6], tok.eosId);
    assert.deepEqual(Array.from(ids.subarray(7)), new Array(70).fill(0));
    assert.equal(tok.count('a photo of a cat'), 7);
    // Truncation keeps the end token.
    const long = tok.encode('cat '.repeat(100));
    assert.equal(long[76], tok.eosId);
    assert.equal(clipCleanText(' Hello\n\nWORLD '), 'hello world');
  });

  it('SD 1.x pads with <|endoftext|> when special_tokens_map.json says so', async () => {
    const dir = await copyFixture();
    try {
      const path = join(dir, 'tokenizer/special_tokens_map.json');
      const map = JSON.parse(await readFile(path, 'utf8'));
      await writeFile(path, JSON.stringify({ ...map, pad_token: '<|endoftext|>' }));
      const tok = (await loadTokenizer((await readBundleManifest(dir)).tokenizer, null)) as ClipBpeTokenizer;
      assert.equal(tok.padId, tok.eosId);
      assert.equal(tok.length, 77, 'model_max_length from tokenizer_config.json');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('tokenizer.json with a BPE model (CLIP as transformers converts it) gives the same ids', async () => {
    const tok = await clip();
    const vocab = JSON.parse(await readFile(join(SD21, 'tokenizer/vocab.json'), 'utf8'));
    const merges = (await readFile(join(SD21, 'tokenizer/merges.txt'), 'utf8')).split('\n').slice(1).filter(Boolean);
    const json = {
      added_tokens: [{ id: 564, content: '<|startoftext|>', special: true }, { id: 565, content: '<|endoftext|>', special: true }],
      normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" }, behavior: 'Removed', invert: true },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', 565], cls: ['<|startoftext|>', 564] },
      padding: { strategy: { Fixed: 77 }, direction: 'Right', pad_id: 0, pad_token: '!' },
      truncation: { max_length: 77 },
      model: { type: 'BPE', vocab, merges, end_of_word_suffix: '</w>', unk_token: '<|endoftext|>' },
    };
    const hf = HfJsonTokenizer.fromJson('tokenizer.json', json, 77);
    for (const text of ['a photo of a cat', "the dog's painting", 'hello world 2024', 'mountain café']) {
      assert.deepEqual(Array.from(hf.encode(text)), Array.from(tok.encode(text)), text);
    }
  });

  it('tokenizer.json with a WordLevel model pads to the text encoder length when it fixes none', () => {
    const json = {
      normalizer: { type: 'Lowercase' },
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '[BOS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[EOS]', type_id: 0 } }], special_tokens: { '[BOS]': { id: '[BOS]', ids: [1], tokens: ['[BOS]'] }, '[EOS]': { id: '[EOS]', ids: [2], tokens: ['[EOS]'] } } },
      padding: null,
      model: { type: 'WordLevel', vocab: { '[PAD]': 0, '[BOS]': 1, '[EOS]': 2, '[UNK]': 3, red: 4, cube: 5, on: 6, a: 7, '!': 8 }, unk_token: '[UNK]' },
    };
    const tok = HfJsonTokenizer.fromJson('tokenizer.json', json, 8);
    assert.deepEqual(Array.from(tok.encode('A red cube on a GREEN cube!')), [1, 7, 4, 5, 6, 7, 3, 2]);
    // No padding section: pad with the end token.
    assert.deepEqual(Array.from(tok.encode('red cube')), [1, 4, 5, 2, 2, 2, 2, 2]);
    assert.throws(() => HfJsonTokenizer.fromJson('tokenizer.json', { ...json, model: { type: 'Unigram', vocab: {} } }, 8), /model type 'Unigram' is not supported/);
  });
});

describe('scheduler config mapping', () => {
  const sd21 = async () => JSON.parse(await readFile(join(SD21, 'scheduler/scheduler_config.json'), 'utf8'));

  it('DDIM from SD 2.1 with the search eta; DDPM and PNDM keep the schedule', async () => {
    const raw = await sd21();
    const ddim = resolveSamplerConfig(samplerConfigFromScheduler(raw, 'scheduler_config.json', { steps: 50, eta: 1 }));
    assert.deepEqual({ ...ddim }, { kind: 'ddim', steps: 50, num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', prediction_type: 'v_prediction', timestep_spacing: 'leading', steps_offset: 1, clip_sample: false, clip_sample_range: 1, set_alpha_to_one: false, eta: 1, use_clipped_model_output: false });
    const ddpm = samplerConfigFromScheduler(raw, 'f', { steps: 20, kind: 'ddpm' });
    assert.equal(ddpm.kind, 'ddpm');
    const pndm = samplerConfigFromScheduler({ ...raw, _class_name: 'PNDMScheduler', prediction_type: 'epsilon' }, 'f', { steps: 20 });
    assert.equal(pndm.kind, 'ddim');
    assert.throws(() => samplerConfigFromScheduler(raw, 'f', { steps: 20, kind: 'flow-euler' }), SchedulerMappingError);
    assert.throws(() => samplerConfigFromScheduler({ ...raw, trained_betas: [0.1] }, 'f', { steps: 20 }), /trained_betas/);
    assert.throws(() => samplerConfigFromScheduler({ ...raw, timestep_spacing: 'sideways' }, 'sched.json', { steps: 20 }), /sched\.json: timestep_spacing/);
    assert.throws(() => samplerConfigFromScheduler({ _class_name: 'KarrasVeScheduler' }, 'f', { steps: 20 }), /not a scheduler this runtime maps/);
  });

  it('flow matching: FlowMatchEuler as flow-euler, or flow-sde-dpmpp with a shift', () => {
    const flux = { _class_name: 'FlowMatchEulerDiscreteScheduler', num_train_timesteps: 1000, shift: 3.0, use_dynamic_shifting: true, base_shift: 0.5, max_shift: 1.15, base_image_seq_len: 256, max_image_seq_len: 4096 };
    const euler = samplerConfigFromScheduler(flux, 'f', { steps: 28, imageSeqLen: 4096 });
    assert.equal(euler.kind, 'flow-euler');
    assert.throws(() => samplerConfigFromScheduler(flux, 'f', { steps: 28 }), /imageSeqLen/);
    assert.throws(() => samplerConfigFromScheduler(flux, 'f', { steps: 28, kind: 'flow-sde-dpmpp' }), /static shift/);
    const sde = samplerConfigFromScheduler(flux, 'f', { steps: 50, kind: 'flow-sde-dpmpp', shift: 1 });
    assert.deepEqual(sde, { kind: 'flow-sde-dpmpp', steps: 50, num_train_timesteps: 1000, shift: 1 });
    const wan = samplerConfigFromScheduler({ _class_name: 'FlowDPMSolverMultistepScheduler', shift: 5, solver_order: 2, prediction_type: 'flow_prediction' }, 'f', { steps: 50 });
    assert.deepEqual(wan, { kind: 'flow-sde-dpmpp', steps: 50, shift: 5, solver_order: 2, prediction_type: 'flow_prediction' });
    assert.throws(() => samplerConfigFromScheduler(flux, 'f', { steps: 28, imageSeqLen: 4096, eta: 1 }), /eta: is a DDIM option/);
  });
});

describe('bundle validation', () => {
  it('accepts the SD 2.1 layout and finds its parts', async () => {
    const m = await readBundleManifest(SD21);
    assert.equal(m.pipelineClass, 'ORTStableDiffusionPipeline');
    assert.equal(m.tokenizer.kind, 'clip-bpe');
    assert.equal(m.denoiser.kind, 'unet');
    assert.ok(m.denoiser.externalData?.endsWith('unet/model.onnx_data'));
    assert.equal(m.vaeDecoder.scalingFactor, 0.18215);
    assert.equal(m.rewards, null);
  });

  it('lists every missing file with its path and what to do', async () => {
    const dir = await copyFixture();
    try {
      await rm(join(dir, 'vae_decoder/model.onnx'));
      await rm(join(dir, 'tokenizer/merges.txt'));
      await writeFile(join(dir, 'vae_decoder/config.json'), JSON.stringify({ scaling_factor: 'big' }));
      await assert.rejects(readBundleManifest(dir), (error: unknown) => {
        assert.ok(error instanceof BundleError);
        const paths = error.problems.map((p) => p.path);
        assert.ok(paths.includes(join(dir, 'vae_decoder/model.onnx')), paths.join());
        assert.ok(paths.includes(join(dir, 'tokenizer/merges.txt')), paths.join());
        assert.match(error.message, /vae_decoder\/model\.onnx: is missing; export the VAE decoder/);
        assert.match(error.message, /scaling_factor "big" is not a positive number/);
        return true;
      });
      await assert.rejects(readBundleManifest(join(dir, 'nowhere')), /is not a folder/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('rejects a U-Net with a wrong input name, naming the file and the input', async () => {
    const dir = await copyFixture();
    try {
      await cp(fixture('broken-parts/unet-timestep-renamed.onnx'), join(dir, 'unet/model.onnx'));
      await assert.rejects(OnnxGenerativeModel.load(dir, { prompt: 'a cat', rewards: REWARDS }), (error: unknown) => {
        assert.ok(error instanceof ModelLayoutError, String(error));
        assert.equal(error.file, join(dir, 'unet/model.onnx'));
        assert.match(error.message, /input 'timestep': expected a timestep input named 'timestep', found inputs 'sample', 't_emb', 'encoder_hidden_states'/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('rejects a U-Net whose sample has the wrong rank', async () => {
    const dir = await copyFixture();
    try {
      await cp(fixture('broken-parts/unet-sample-rank3.onnx'), join(dir, 'unet/model.onnx'));
      await assert.rejects(OnnxGenerativeModel.load(dir, { prompt: 'a cat', rewards: REWARDS }), (error: unknown) => {
        assert.ok(error instanceof ModelLayoutError);
        assert.match(error.message, /unet\/model\.onnx: input 'sample': expected rank 4 or 5, found rank 3 \[batch_size, 4, hw\]/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('needs reward models: the bundle has no rewards.json and none was given', async () => {
    await assert.rejects(OnnxGenerativeModel.load(SD21, { prompt: 'a cat' }), (error: unknown) => error instanceof BundleError && /rewards\.json: is missing and no rewards manifest was given/.test(error.message));
  });

  it('reward manifests: one guidance reward, known input sources, files present', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rewards-'));
    try {
      const base = JSON.parse(await readFile(REWARDS, 'utf8'));
      await cp(fixture('tiny-rewards'), dir, { recursive: true });
      const write = (value: unknown) => writeFile(join(dir, 'rewards.json'), JSON.stringify(value));
      const specs = await readRewardManifest(join(dir, 'rewards.json'));
      assert.deepEqual(specs.map((s) => s.role), ['guidance', 'held-out']);
      await write({ ...base, rewards: base.rewards.map((r: object) => ({ ...r, role: 'held-out' })) });
      await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), /exactly one reward with role 'guidance'/);
      await write({ ...base, rewards: [{ ...base.rewards[0], inputs: { pixel_values: 'picture' } }] });
      await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), (e: unknown) => e instanceof RewardManifestError && e.field === 'rewards[0].inputs.pixel_values');
      await write({ ...base, rewards: [{ ...base.rewards[0], embedding: 42 }] });
      await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), (e: unknown) => e instanceof RewardManifestError && e.field === 'rewards[0].embedding');
      await write({ ...base, rewards: [{ ...base.rewards[0], path: 'missing.onnx' }] });
      await assert.rejects(readRewardManifest(join(dir, 'rewards.json')), /missing\.onnx is missing/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});

describe('execution providers', () => {
  it("falls back from cuda to cpu and reports cuda's failure", async () => {
    const session = await OnnxSession.open(join(SD21, 'vae_decoder/model.onnx'), { providers: ['cuda', 'cpu'] });
    try {
      assert.equal(session.provider, 'cpu');
      assert.equal(session.attempts.length, 2);
      assert.equal(session.attempts[0]!.provider, 'cuda');
      assert.equal(session.attempts[0]!.ok, false);
      assert.ok((session.attempts[0]!.error ?? '').length > 0);
      assert.deepEqual(session.attempts[1], { provider: 'cpu', ok: true });
      assert.match(session.describe(), /on cpu \(cuda failed: .+\)/);
      assert.deepEqual(session.input('latent_sample').dims, ['batch_size', 4, 'height', 'width']);
    } finally {
      await session.release();
    }
  });

  it('fails with every attempt listed when no provider opens the model', async () => {
    await assert.rejects(OnnxSession.open(join(SD21, 'vae_decoder/model.onnx'), { providers: ['tensorrt', 'cuda'] }), (error: unknown) => {
      assert.ok(error instanceof ProviderUnavailableError);
      assert.deepEqual(error.attempts.map((a) => a.provider), ['tensorrt', 'cuda']);
      assert.match(error.message, /add 'cpu' to the provider list/);
      return true;
    });
  });
});

describe('model specs', () => {
  it('folder paths and bundle: specs name bundles; the sync loader points bundles to openModel', () => {
    assert.equal(bundlePath(`bundle:${SD21}`), SD21);
    assert.equal(bundlePath('./models/sd21'), './models/sd21');
    assert.equal(bundlePath('onnx:nowhere'), null);
    assert.equal(bundlePath('analytic:gmm'), null);
    assert.throws(() => loadModel(SD21, { prediction: 'v_prediction' }), (e: unknown) => e instanceof ModelLoadError && /call openModel/.test(e.message));
  });
});

describe('denoising-only workers', () => {
  it('with remoteRewards a bundle opens no reward model: the rewards keep their names and roles, and scoring here says where it happens', async () => {
    const bundle = fileURLToPath(new URL('../../models/bundles/tiny-sd', import.meta.url));
    const local = await OnnxGenerativeModel.load(bundle, { prompt: 'a red circle' });
    const remote = await OnnxGenerativeModel.load(bundle, { prompt: 'a red circle', remoteRewards: true });
    try {
      assert.deepEqual(remote.rewards.map((r) => [r.name, r.role]), local.rewards.map((r) => [r.name, r.role]));
      assert.ok(local.sessions.some((s) => s.part.startsWith('reward:')), 'the bundle has no reward model: the test proves nothing');
      assert.ok(!remote.sessions.some((s) => s.part.startsWith('reward:')), `opened: ${remote.sessions.map((s) => s.part).join(', ')}`);
      await assert.rejects(Promise.resolve(remote.rewards[0]!.score(new Float32Array(remote.decoder.sampleSize), 1, new Float64Array(1))), /scored on the run's reward workers/);
    } finally {
      await Promise.all([local.release(), remote.release()]);
    }
  });
});
