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
import { OnnxSession } from '../worker/runtime/onnx-session.js';
import { cudaProcessEnvironment, parseByteSize, type ConvAlgoSearch, type CudaProviderOptions } from '../worker/runtime/providers.js';

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
  ...(values['conv-algo'] !== undefined ? { convAlgoSearch: values['conv-algo'] as ConvAlgoSearch } : {}),
  ...(values['memory-limit'] !== undefined ? { memoryLimitBytes: parseByteSize(values['memory-limit'])! } : {}),
};
Object.assign(process.env, cudaProcessEnvironment(options));

const started = performance.now();
let session: OnnxSession;
try {
  session = await OnnxSession.open(values.graph, { providers: ['cuda'], cuda: options });
} catch (error) {
  console.log(JSON.stringify({ label: values.label, graph: values.graph, options, opened: false, error: (error as Error).message.slice(0, 400) }));
  process.exit(0);
}
const openMs = performance.now() - started;
const input = session.inputs.values().next().value!;
const dims = input.dims.map((d) => (typeof d === 'number' ? d : 1));
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
console.log(JSON.stringify({ label: values.label, graph: values.graph, options, opened: true, provider: session.provider, openMs: Math.round(openMs), firstRunMs: times[0] === undefined ? null : +times[0].toFixed(2), medianMs: later.length ? +later[Math.floor(later.length / 2)]!.toFixed(3) : null, runFailure: failure }));
await session.release();
