// Do two ONNX graphs of the same network compute the same function on CUDA? Feeds both one seeded
// input of the SD-2.1-sized stand-in's shapes and prints the largest and the RMS difference of the
// outputs relative to the reference output's RMS (bench/device/cuda-runtime.sh, phase standin-compare).
//   node bench/device/compare-graphs.mjs REFERENCE.onnx OTHER.onnx [batch]
import ort from 'onnxruntime-node';
const [reference, other, batchText = '2'] = process.argv.slice(2);
const batch = Number(batchText);
let seed = 1;
const normal = () => { seed = (seed * 16807) % 2147483647; const u = seed / 2147483647; seed = (seed * 16807) % 2147483647; const v = seed / 2147483647; return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v); };
const fill = (n) => Float32Array.from({ length: n }, normal);
const feeds = {
  sample: new ort.Tensor('float32', fill(batch * 4 * 64 * 64), [batch, 4, 64, 64]),
  timestep: new ort.Tensor('float32', new Float32Array(batch).fill(500), [batch]),
  encoder_hidden_states: new ort.Tensor('float32', fill(batch * 77 * 1024), [batch, 77, 1024]),
};
const run = async (path) => { const s = await ort.InferenceSession.create(path, { executionProviders: [{ name: 'cuda' }] }); const out = (await s.run(feeds)).out_sample.data; await s.release(); return out; };
const a = await run(reference);
const b = await run(other);
let max = 0, sq = 0, ref = 0;
for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); max = Math.max(max, d); sq += d * d; ref += a[i] * a[i]; }
const rms = Math.sqrt(ref / a.length);
console.log(JSON.stringify({ reference, other, batch, referenceRms: rms, maxAbsDiff: max, rmsDiffOverRms: Math.sqrt(sq / a.length) / rms, maxAbsDiffOverRms: max / rms }));
