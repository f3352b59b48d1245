/**
 * Does a CUDA provider option take effect? Opens one graph (models/scripts/cuda_probe_graphs.py) on the
 * CUDA provider with the options given, as the worker runtime opens every model, and times its runs.
 * Run each configuration in its own process: TF32 off is process-wide (NVIDIA_TF32_OVERRIDE) and must be
 * set before CUDA starts, which this script does as ThreadPool does.
 *
 *   node dist/bench/cuda-options.js --graph /tmp/probe/matmul.onnx [--no-tf32] [--conv-algo heuristic]
 *       [--memory-limit 32MiB] [--device 0] [--runs 20] [--label name]
 *
 * Prints one JSON line: label, options, whether the session opened (and the error if not), first-run ms
 * and the median of the later runs.
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { explainCudaProviderLoadError } from '../worker/runtime/cuda-provider/index.js';
import { cudaExecutionProvider, cudaProcessEnvironment, parseByteSize, type CudaProviderOptions } from '../worker/runtime/providers.js';

const { values } = parseArgs({
  options: {
    graph: { type: 'string' },
    'no-tf32': { type: 'boolean', default: false },
    'conv-algo': { type: 'string' },
    'memory-limit': { type: 'string' },
    device: { type: 'string' },
    runs: { type: 'string', default: '20' },
    label: { type: 'string', default: '' },
  },
});
if (values.graph === undefined) throw new Error('cuda-options: --graph is required');
const options: CudaProviderOptions = {
  ...(values.device !== undefined ? { deviceId: Number(values.device) } : {}),
  ...(values['no-tf32'] ? { tf32: false } : {}),
};
Object.assign(process.env, cudaProcessEnvironment(options));
// The options the product cannot pass (CudaProviderOptions says why) go as the `ep.cuda.*` session
// entries newer providers read, so a new binding or provider can be checked with this probe alone.
const untried: Record<string, string> = {
  ...(values['conv-algo'] !== undefined ? { cudnn_conv_algo_search: values['conv-algo'].toUpperCase() } : {}),
  ...(values['memory-limit'] !== undefined ? { gpu_mem_limit: String(parseByteSize(values['memory-limit'])) } : {}),
};
const recorded = { ...options, ...(Object.keys(untried).length > 0 ? { sessionEntries: untried } : {}) };

const started = performance.now();
let session: ort.InferenceSession;
try {
  ort.env.logLevel = 'fatal';
  session = await ort.InferenceSession.create(values.graph, {
    executionProviders: [cudaExecutionProvider(options)],
    ...(Object.keys(untried).length > 0 ? { extra: { ep: { cuda: untried } } } : {}),
    logSeverityLevel: 3,
  });
} catch (error) {
  const text = (error as Error).message;
  console.log(JSON.stringify({ label: values.label, graph: values.graph, options: recorded, opened: false, error: (explainCudaProviderLoadError(text) ?? text).slice(0, 400) }));
  process.exit(0);
}
const openMs = performance.now() - started;
const input = session.inputMetadata[0]!;
if (!input.isTensor) throw new Error(`cuda-options: ${values.graph}'s first input is not a tensor`);
const dims = input.shape.map((d) => (typeof d === 'number' ? d : 1));
const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i) * 0.5);
const feeds = { [input.name]: new ort.Tensor('float32', data, dims) };
const times: number[] = [];
let failure: string | null = null;
for (let i = 0; i < Number(values.runs); i++) {
  const t = performance.now();
  try {
    await session.run(feeds);
  } catch (error) {
    failure = (error as Error).message.slice(0, 400);
    break;
  }
  times.push(performance.now() - t);
}
const later = times.slice(1).sort((a, b) => a - b);
console.log(JSON.stringify({ label: values.label, graph: values.graph, options: recorded, opened: true, provider: 'cuda', openMs: Math.round(openMs), firstRunMs: times[0] === undefined ? null : +times[0].toFixed(2), medianMs: later.length ? +later[Math.floor(later.length / 2)]!.toFixed(3) : null, runFailure: failure }));
await session.release();
