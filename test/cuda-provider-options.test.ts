import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseRunConfig, resolveRunConfig } from '../config/resolve-run-config.js';
import { cudaExecutionProvider, cudaProcessEnvironment, parseByteSize } from '../worker/runtime/providers.js';
import { OnnxSession, ProviderUnavailableError } from '../worker/runtime/onnx-session.js';
import { explainCudaProviderLoadError } from '../worker/runtime/cuda-provider/index.js';
import { evosearch } from './support/evosearch-cli.js';
import { repoRoot } from './support/repo-root.js';

const root = repoRoot();
const unet = join(root, 'models', 'bundles', 'tiny-sd', 'unet', 'model.onnx');
const resolve = (input: unknown) => resolveRunConfig(parseRunConfig(input, 'test config'), 'test config');


/** This machine has no CUDA provider: the tests below are about what a user without one is told. */
describe('CUDA provider options', () => {
  it('map onto the provider entry (the device, all the binding passes) and the process environment (TF32)', () => {
    assert.deepEqual(cudaExecutionProvider({ deviceId: 1, tf32: false }), { name: 'cuda', deviceId: 1 });
    assert.deepEqual(cudaExecutionProvider(), { name: 'cuda', deviceId: 0 });
    assert.deepEqual(cudaProcessEnvironment({ tf32: false }), { NVIDIA_TF32_OVERRIDE: '0' });
    assert.deepEqual(cudaProcessEnvironment({ tf32: true }), {});
    assert.deepEqual(cudaProcessEnvironment(), {});
  });

  it('a run on CUDA defaults to one model thread (two contend for the one GPU), and takes more when asked', () => {
    assert.equal(resolve({ providers: ['cuda', 'cpu'] }).workers, 1);
    assert.equal(resolve({ providers: ['cuda'], workers: 3 }).workers, 3);
  });

  it('a GPU index past the visible GPUs is explained, not a page of native text', () => {
    const native = '/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_call.cc:154 std::conditional_t<THRW, void, onnxruntime::common::Status> onnxruntime::CudaCall(ERRTYPE, const char*, const char*, SUCCTYPE, const char*, const char*, int) [with ERRTYPE = cudaError; bool THRW = true] CUDA failure 101: invalid device ordinal ; GPU=1 ; hostname=h ; expr=cudaSetDevice(info_.device_id);';
    const message = explainCudaProviderLoadError(native, { env: { CUDA_VISIBLE_DEVICES: '0' } });
    assert.match(message ?? '', /no GPU of that index.*CUDA_VISIBLE_DEVICES=0.*--cuda-device counts from 0/);
  });

  it('read sizes with units, and refuse what is no size', () => {
    assert.equal(parseByteSize('8GiB'), 8 * 2 ** 30);
    assert.equal(parseByteSize('512 MiB'), 512 * 2 ** 20);
    assert.equal(parseByteSize('2GB'), 2e9);
    assert.equal(parseByteSize('1073741824'), 2 ** 30);
    for (const bad of ['', 'lots', '8 parsecs', '-1GiB', '0']) assert.equal(parseByteSize(bad), null, bad);
  });

  it('come from a config file or flags into the plan, only with the cuda provider listed', () => {
    const plan = resolve({ providers: ['cuda', 'cpu'], cuda: { deviceId: 1, tf32: false } });
    assert.deepEqual(plan.cuda, { deviceId: 1, tf32: false });
    assert.equal(resolve({ providers: ['cuda'] }).cuda, undefined, 'no options: onnxruntime defaults');
    const refused = (input: unknown, field: string, message: RegExp) =>
      assert.throws(() => resolve(input), (error: unknown) => error instanceof ConfigError && error.field === field && message.test(error.message));
    refused({ cuda: { tf32: false } }, 'cuda', /provider list \[cpu\] has no 'cuda'.*--providers cuda,cpu/);
    refused({ providers: ['cuda'], cuda: { memoryLimit: '8 parsecs' } }, 'cuda.memoryLimit', /bytes or a size such as 8GiB/);
    // onnxruntime-node 1.29 does not apply them (measured): refused with the reason, never silently dropped.
    refused({ providers: ['cuda'], cuda: { memoryLimit: '4GiB' } }, 'cuda.memoryLimit', /cannot be applied: onnxruntime-node 1\.29 passes only the device id.*CUDA_VISIBLE_DEVICES/);
    refused({ providers: ['cuda'], cuda: { convAlgoSearch: 'heuristic' } }, 'cuda.convAlgoSearch', /cannot be applied/);
    refused({ providers: ['cuda'], cuda: { deviceId: -1 } }, 'cuda.deviceId', /test config/);
    refused({ providers: ['cuda'], cuda: { convAlgoSearch: 'fastest' } }, 'cuda.convAlgoSearch', /exhaustive/);
    refused({ providers: ['cuda'], cuda: { tf32: 'no' } }, 'cuda.tf32', /boolean/);
    refused({ providers: ['cuda'], cuda: { device: 1 } }, 'cuda', /device/);
  });

  it('are run flags and worker flags, checked by the config schema with the field named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cuda-flags-'));
    const config = join(dir, 'run.yaml');
    await writeFile(config, 'providers: [cuda, cpu]\ncuda:\n  memoryLimit: 2GiB\n');
    const bad = await evosearch(['run', '--config', config, '--cuda-device', '0', '--out', join(dir, 'r')]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, new RegExp(`invalid config \\(${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\+ flags\\): cuda\\.memoryLimit: cannot be applied`));
    const noCuda = await evosearch(['run', '--no-cuda-tf32', '--budget-nfe', '1000', '--out', join(dir, 'r2')]);
    assert.equal(noCuda.code, 2, noCuda.stderr);
    assert.match(noCuda.stderr, /cuda: CUDA provider options are set but the provider list \[cpu\] has no 'cuda'/);
    const device = await evosearch(['worker', '--model', 'analytic:gmm', '--providers', 'cuda', '--cuda-device', 'first', '--listen', '127.0.0.1:0']);
    assert.equal(device.code, 2, device.stderr);
    assert.match(device.stderr, /--cuda-device: 'first' is not a GPU index/);
  });
});

describe('--providers cuda without CUDA', () => {
  it('opening a model is one short error that says why, with no native log', async () => {
    await assert.rejects(OnnxSession.open(unet, { providers: ['cuda'] }), (error: unknown) => {
      assert.ok(error instanceof ProviderUnavailableError, String(error));
      assert.match(error.message, /cuda: /);
      assert.ok(error.message.length < 600, `short: ${error.message}`);
      return true;
    });
  });

  it('a run that lists only cuda fails before any work, naming the provider and what to do', async () => {
    const out = await mkdtemp(join(tmpdir(), 'cuda-only-'));
    const { code, stderr } = await evosearch(['run', '--model', 'models/bundles/tiny-sd', '--prompt', 'a red circle', '--budget-nfe', '100', '--providers', 'cuda', '--no-progress', '--out', out]);
    assert.notEqual(code, 0);
    assert.match(stderr, /cuda: /);
    assert.doesNotMatch(stderr, /\[E:onnxruntime|provider_bridge_ort\.cc/, 'the runtime\'s native log stays quiet');
    assert.ok(stderr.trim().split('\n').length <= 2, `one or two lines, got:\n${stderr}`);
  });

  it('--providers cuda,cpu falls back with one line that says why, and gives the CPU run\'s answer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cuda-fallback-'));
    const args = ['run', '--model', 'models/bundles/tiny-sd', '--prompt', 'a red circle', '--budget-nfe', '100', '--no-progress', '--workers', '1'];
    const fallback = await evosearch([...args, '--providers', 'cuda,cpu', '--out', join(dir, 'fallback')]);
    const cpu = await evosearch([...args, '--providers', 'cpu', '--out', join(dir, 'cpu')]);
    assert.equal(fallback.code, 0, fallback.stderr);
    assert.equal(cpu.code, 0, cpu.stderr);
    const lines = fallback.stderr.trim().split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `one line, got:\n${fallback.stderr}`);
    assert.match(lines[0]!, /cuda unavailable: .+; running on cpu/);
    assert.doesNotMatch(fallback.stderr, /\[E:onnxruntime/);
    const record = async (name: string) => JSON.parse(await readFile(join(dir, name, 'record.json'), 'utf8')) as { best: { reward: number; id: number }; spent: { nfe: number } };
    const [a, b] = [await record('fallback'), await record('cpu')];
    assert.deepEqual(a.best, b.best);
    assert.equal(a.spent.nfe, b.spent.nfe);
  });
});
